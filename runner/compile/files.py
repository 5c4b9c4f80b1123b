"""`batchrun compile --out DIR`: the job's exact batch bodies as chunk files and a manifest,
written without submitting anything."""

from __future__ import annotations

import hashlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from runner.compile import BODY_HEAD, BODY_TAIL, CompiledRequest, Packer, iter_requests
from runner.spec import JobSpec

_BLOCK_BYTES = 1 << 20  # lines are handed to the writer thread in blocks of about 1 MiB
_MAX_PENDING = 8  # blocks queued at most: bounds memory whatever the job size


@dataclass
class ChunkFile:
    """One written chunk file, as listed in manifest.json."""

    file: str
    betas: tuple[str, ...]
    requests: int = 0
    size: int = 0
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "requests": self.requests,
            "bytes": self.size,
            "betas": list(self.betas),
            "sha256": self.sha256,
        }


def _write_block(fh: IO[bytes], digest: Any, block: bytes) -> None:
    fh.write(block)
    digest.update(block)


class _ChunkWriter:
    """Streams request lines into chunk-NNNN.json files, one chunk open at a time.

    Writing and hashing run on one background thread: both release the GIL, so they overlap
    with rendering the next requests (a third of the time of `batchrun compile` otherwise).
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.done: list[ChunkFile] = []
        self.current: ChunkFile | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-writer")
        self._pending: deque[Future[None]] = deque()
        self._parts: list[bytes] = []
        self._buffered = 0
        self._fh: IO[bytes] | None = None
        self._digest: Any = None

    def write(self, request: CompiledRequest, new_chunk: bool) -> str:
        """Append `request` to the current chunk, or to a new one; returns the file name."""
        if new_chunk or self.current is None:
            self.close()
            self.current = ChunkFile(f"chunk-{len(self.done) + 1:04d}.json", request.betas)
            self._fh = (self.out_dir / self.current.file).open("wb")
            self._digest = hashlib.sha256()
            self._put(BODY_HEAD)
        else:
            self._put(b",")
        self._put(request.line)
        self.current.requests += 1
        return self.current.file

    def _put(self, data: bytes) -> None:
        assert self.current is not None
        self._parts.append(data)
        self._buffered += len(data)
        self.current.size += len(data)
        if self._buffered >= _BLOCK_BYTES:
            self._flush()

    def _flush(self) -> None:
        assert self._fh is not None
        block, self._parts, self._buffered = b"".join(self._parts), [], 0
        self._pending.append(self._pool.submit(_write_block, self._fh, self._digest, block))
        while len(self._pending) > _MAX_PENDING:
            self._pending.popleft().result()

    def close(self) -> None:
        """Finish the current chunk: its tail, its file, its sha256."""
        if self.current is None or self._fh is None:
            return
        self._put(BODY_TAIL)
        self._flush()
        while self._pending:
            self._pending.popleft().result()
        self._fh.close()
        self.current.sha256 = self._digest.hexdigest()
        self.done.append(self.current)
        self.current = self._fh = self._digest = None

    def shutdown(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._pool.shutdown(wait=True)


def write_compiled(job: JobSpec, out_dir: Path) -> list[ChunkFile]:
    """Write the job's chunks as `out_dir/chunk-0001.json`... and `manifest.json` (per chunk:
    file, requests, bytes, betas, sha256; per request: custom_id, input_key, chunk).

    Streams: at most one request is held in memory. Stale chunk files from an earlier
    compile are removed first; manifest.json is written last, atomically.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("chunk-[0-9]*.json"), out_dir / "manifest.json"]:
        stale.unlink(missing_ok=True)
    writer = _ChunkWriter(out_dir)
    try:
        _write_all(job, out_dir, writer)
    finally:
        writer.shutdown()
    return writer.done


def _write_all(job: JobSpec, out_dir: Path, writer: _ChunkWriter) -> None:
    packer = Packer(job.max_requests, job.max_bytes)
    partial = out_dir / "manifest.json.partial"
    with partial.open("wb") as manifest:
        manifest.write(b'{"job":' + orjson.dumps(job.name))
        manifest.write(b',"spec_hash":' + orjson.dumps(job.spec_hash) + b',"requests":[')
        separator = b"\n"
        for request in iter_requests(job):
            chunk_file = writer.write(request, packer.place(request))
            entry = {"custom_id": request.custom_id, "input_key": request.input_key}
            entry["chunk"] = chunk_file
            manifest.write(separator + orjson.dumps(entry))
            separator = b",\n"
        writer.close()
        chunks = [c.as_dict() for c in writer.done]
        manifest.write(b'\n],"chunks":' + orjson.dumps(chunks, option=orjson.OPT_INDENT_2))
        manifest.write(b"}\n")
    partial.replace(out_dir / "manifest.json")
