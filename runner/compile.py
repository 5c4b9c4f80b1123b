"""Compile: items -> requests with deterministic custom_ids -> chunks, the exact POST bodies.

A request's `line` is serialised once, by orjson with sorted keys: the same bytes give its
custom_id (sha256) and go into the chunk body, so what is hashed is what is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from runner.errors import InputError
from runner.inputs import iter_inputs
from runner.render import Renderer
from runner.spec import JobSpec

# API limits (api-contract section 4); MB read as 10^6, safe whichever way the API means it.
API_MAX_REQUESTS = 100_000
API_MAX_BODY_BYTES = 256_000_000
API_MAX_REQUEST_BYTES = 32_000_000  # one Messages request (api-contract 2.7)

BODY_HEAD = b'{"requests":['
BODY_TAIL = b"]}"
BODY_OVERHEAD = len(BODY_HEAD) + len(BODY_TAIL)

_SORT = orjson.OPT_SORT_KEYS
_ID_DOMAIN = b"batchrun custom_id v1\0"  # change it and every id changes: never silently


@dataclass(frozen=True, slots=True)
class CompiledRequest:
    """One request: `line` is the exact `{"custom_id":...,"params":{...}}` bytes of the body."""

    custom_id: str
    input_key: str
    input_path: str | None
    line: bytes
    betas: tuple[str, ...]


@dataclass(frozen=True)
class Chunk:
    """One batch to create: `body` is exactly the bytes posted, under the `betas` header."""

    betas: tuple[str, ...]
    body: bytes
    custom_ids: tuple[str, ...]
    input_keys: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------
# Identity


def _id_seed(job_name: str, betas: Iterable[str]) -> Any:
    """The hash state shared by all requests of a job: the per-job part is hashed once."""
    return hashlib.sha256(_ID_DOMAIN + orjson.dumps([job_name, sorted(set(betas))]) + b"\0")


def _finish_id(seed: Any, input_key: str, params_bytes: bytes) -> str:
    digest = seed.copy()
    digest.update(orjson.dumps(input_key))  # a JSON string: self-delimiting
    digest.update(params_bytes)
    # 160 bits as 40 hex digits: `br_` + 40 fits ^[a-zA-Z0-9_-]{1,64}$.
    return "br_" + str(digest.hexdigest()[:40])


def custom_id(
    job_name: str, input_key: str, params: Mapping[str, Any], betas: Iterable[str]
) -> str:
    """The request's stable id, `br_` + 40 hex digits: 160 bits of sha256 over (job name,
    sorted betas, input key, canonical params bytes: orjson with sorted keys). Same inputs,
    same id, on any machine."""
    return _finish_id(_id_seed(job_name, betas), input_key, orjson.dumps(params, option=_SORT))


def normal_betas(betas: Iterable[str]) -> tuple[str, ...]:
    """The canonical form of a beta set: sorted, without repeats (one chunk per set)."""
    return tuple(sorted(set(betas)))


# ---------------------------------------------------------------------------------------
# Requests


def iter_requests(job: JobSpec) -> Iterator[CompiledRequest]:
    """Every request of the job, in input order, streamed (see `iter_compiled`)."""
    for request, _params in iter_compiled(job):
        yield request


def iter_compiled(job: JobSpec) -> Iterator[tuple[CompiledRequest, dict[str, Any]]]:
    """Each request with its params dict (whose `system` may be an `orjson.Fragment`).

    Raises `InputError` for a bad input, a render error, or a request larger than a single
    batch may hold (`batch.max_bytes`, or the API's per-request limit), naming the input.
    """
    renderer = Renderer(job)
    # The system prompt is the same for every request: serialise it once.
    system = orjson.Fragment(orjson.dumps(renderer.system, option=_SORT))
    seed = _id_seed(job.name, job.betas)
    betas = normal_betas(job.betas)
    limit = min(API_MAX_REQUEST_BYTES, body_limit(job.max_bytes) - BODY_OVERHEAD)
    for item in iter_inputs(job):
        params = renderer.params(item)
        if renderer.system is not None:
            params["system"] = system
        params_bytes = orjson.dumps(params, option=_SORT)
        cid = _finish_id(seed, item.key, params_bytes)
        line = b'{"custom_id":"' + cid.encode("ascii") + b'","params":' + params_bytes + b"}"
        if len(line) > limit:
            raise too_large(item.key, len(line), limit)
        yield CompiledRequest(cid, item.key, item.path, line, betas), params


def too_large(input_key: str, size: int, limit: int) -> InputError:
    """The error for a request that no batch could hold."""
    return InputError(
        f"input {input_key!r}: its request is {size:,} bytes, more than one batch may hold "
        f"({limit:,} bytes after the body's framing): shrink or split this input"
    )


def body_limit(max_bytes: int) -> int:
    """A job's `batch.max_bytes`, never above the API's own limit."""
    return min(max_bytes, API_MAX_BODY_BYTES)


# ---------------------------------------------------------------------------------------
# Chunks


class Packer:
    """Greedy, deterministic assignment of requests to chunks: in input order, a request
    joins the open chunk of its beta set unless that would pass either limit."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = min(max_requests, API_MAX_REQUESTS)
        self.max_bytes = body_limit(max_bytes)
        self._open: dict[tuple[str, ...], list[int]] = {}  # betas -> [requests, bytes]

    def place(self, request: CompiledRequest) -> bool:
        """Account for `request`; True when it starts a new chunk of its beta set (so the
        previous chunk of that set, if any, is complete). Raises `InputError` when even a
        chunk of its own could not hold it."""
        size = len(request.line)
        if size + BODY_OVERHEAD > self.max_bytes:
            raise too_large(request.input_key, size, self.max_bytes - BODY_OVERHEAD)
        state = self._open.get(request.betas)
        # 1: the comma between lines
        if (
            state is not None
            and state[0] < self.max_requests
            and state[1] + 1 + size <= self.max_bytes
        ):
            state[0] += 1
            state[1] += 1 + size
            return False
        self._open[request.betas] = [1, BODY_OVERHEAD + size]
        return True


def make_chunks(
    requests: Iterable[CompiledRequest], max_requests: int, max_bytes: int
) -> Iterator[Chunk]:
    """Chunks of `requests`, each within both limits (clamped to the API's), one beta set
    each. Holds one open chunk per beta set; the same requests in give the same chunks out.
    Chunks are yielded as they fill, the partly filled ones at the end in order of their
    first request."""
    packer = Packer(max_requests, max_bytes)
    open_: dict[tuple[str, ...], list[CompiledRequest]] = {}
    for request in requests:
        if packer.place(request) and open_.get(request.betas):
            yield _chunk(request.betas, open_.pop(request.betas))
        open_.setdefault(request.betas, []).append(request)
    for betas, members in open_.items():
        yield _chunk(betas, members)


def _chunk(betas: tuple[str, ...], members: list[CompiledRequest]) -> Chunk:
    # One join over head, lines, commas and tail: the body is copied once, never twice.
    parts = [BODY_HEAD]
    for request in members:
        parts += (request.line, b",")
    parts[-1] = BODY_TAIL  # the last comma
    body = b"".join(parts)
    ids = tuple(r.custom_id for r in members)
    return Chunk(betas, body, ids, tuple(r.input_key for r in members))


# ---------------------------------------------------------------------------------------
# Writing compiled chunks to disk


@dataclass
class ChunkFile:
    """One written chunk file, as listed in manifest.json."""

    file: str
    requests: int = 0
    size: int = 0
    betas: tuple[str, ...] = ()
    sha256: str = ""
    _digest: Any = field(default=None, repr=False)
    _fh: IO[bytes] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "requests": self.requests,
            "bytes": self.size,
            "betas": list(self.betas),
            "sha256": self.sha256,
        }


class _ChunkWriter:
    """Streams request lines into chunk-NNNN.json files: memory stays flat, whatever the size."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.done: list[ChunkFile] = []
        self.current: ChunkFile | None = None

    def write(self, request: CompiledRequest, new_chunk: bool) -> str:
        if new_chunk or self.current is None:
            self.close()
            name = f"chunk-{len(self.done) + 1:04d}.json"
            fh = (self.out_dir / name).open("wb")
            self.current = ChunkFile(name, betas=request.betas, _digest=hashlib.sha256(), _fh=fh)
            self._put(BODY_HEAD)
        else:
            self._put(b",")
        self._put(request.line)
        self.current.requests += 1
        return self.current.file

    def _put(self, data: bytes) -> None:
        assert self.current is not None and self.current._fh is not None
        self.current._fh.write(data)
        self.current._digest.update(data)
        self.current.size += len(data)

    def close(self) -> None:
        if self.current is None:
            return
        self._put(BODY_TAIL)
        assert self.current._fh is not None
        self.current._fh.close()
        self.current.sha256 = self.current._digest.hexdigest()
        self.current._fh = self.current._digest = None
        self.done.append(self.current)
        self.current = None


def write_compiled(job: JobSpec, out_dir: Path) -> list[ChunkFile]:
    """Write the job's chunks as `out_dir/chunk-0001.json`... and `manifest.json` (per chunk:
    file, requests, bytes, betas, sha256; per request: custom_id, input_key, chunk).

    Streams: at most one request is held in memory. Stale chunk files from an earlier
    compile are removed first; manifest.json is written last, atomically.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("chunk-[0-9]*.json"), out_dir / "manifest.json"]:
        stale.unlink(missing_ok=True)
    packer = Packer(job.max_requests, job.max_bytes)
    writer = _ChunkWriter(out_dir)
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
    return writer.done
