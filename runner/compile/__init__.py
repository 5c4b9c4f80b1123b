"""Compile: items -> requests with deterministic custom_ids -> chunks, the exact POST bodies.

A request's params are serialised twice by orjson: with sorted keys for its custom_id (so
the id does not depend on how a mapping happens to be ordered), and in their natural order
for the chunk body, because order can carry meaning the API keeps (a tool's or an output
schema's `properties` are generated in the order given). The shared system prompt is
serialised once per job in both forms and spliced in as an `orjson.Fragment`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from runner import limits
from runner.errors import InputError
from runner.inputs import InputItem
from runner.render import Renderer, keyed_inputs
from runner.spec import JobSpec

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


def chunk_digest(betas: Sequence[str], custom_ids: Sequence[str]) -> str:
    """The sha256 that identifies a chunk (its intent's `chunk_sha256`): of its beta set and
    custom_ids, each itself a digest of its request's bytes. As telling as hashing the body,
    at a two-hundredth of the bytes (the body's sha256 was ~0.7 s per 100k requests)."""
    return hashlib.sha256(orjson.dumps([list(betas), list(custom_ids)])).hexdigest()


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
    builder = RequestBuilder(job)
    for item in keyed_inputs(job):
        yield builder.build(item)


class RequestBuilder:
    """Builds the requests of one job, one input at a time: templates compiled, the system
    prompt rendered and serialised, and the job's part of every custom_id hashed, once."""

    def __init__(self, job: JobSpec) -> None:
        self.renderer = renderer = Renderer(job)
        self._system_sorted = orjson.Fragment(orjson.dumps(renderer.system, option=_SORT))
        self._system_natural = orjson.Fragment(orjson.dumps(renderer.system))
        self._seed = _id_seed(job.name, job.betas)
        self._betas = normal_betas(job.betas)
        self._limit = min(limits.MAX_REQUEST_BYTES, body_limit(job.max_bytes) - BODY_OVERHEAD)

    def build(self, item: InputItem) -> tuple[CompiledRequest, dict[str, Any]]:
        """The request of one keyed input, and its params. Raises `InputError` (see
        `iter_compiled`)."""
        params = self.renderer.params(item)
        system = self.renderer.system is not None
        if system:
            params["system"] = self._system_sorted
        cid = _finish_id(self._seed, item.key, orjson.dumps(params, option=_SORT))
        if system:
            params["system"] = self._system_natural
        params_bytes = orjson.dumps(params)
        line = b'{"custom_id":"' + cid.encode("ascii") + b'","params":' + params_bytes + b"}"
        if len(line) > self._limit:
            raise too_large(item.key, len(line), self._limit)
        return CompiledRequest(cid, item.key, item.path, line, self._betas), params


def too_large(input_key: str, size: int, limit: int) -> InputError:
    """The error for a request that no batch could hold."""
    return InputError(
        f"input {input_key!r}: its request is {size:,} bytes, more than one batch may hold "
        f"({limit:,} bytes after the body's framing): shrink or split this input"
    )


def body_limit(max_bytes: int) -> int:
    """A job's `batch.max_bytes`, never above the API's own limit."""
    return min(max_bytes, limits.MAX_BATCH_BYTES)


# ---------------------------------------------------------------------------------------
# Chunks


class Packer:
    """Greedy, deterministic assignment of requests to chunks: in input order, a request
    joins the open chunk of its beta set unless that would pass either limit."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = min(max_requests, limits.MAX_BATCH_REQUESTS)
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
    each. The same requests in give the same chunks out. Chunks are yielded as they fill,
    the partly filled ones at the end in order of their first request.

    Memory: one open chunk per beta set, about 1.1x its body (lines are copied into the
    body as they come, and the finished body is handed out without another copy).
    """
    packer = Packer(max_requests, max_bytes)
    open_: dict[tuple[str, ...], _OpenChunk] = {}
    for request in requests:
        current = open_.get(request.betas)
        if packer.place(request) and current is not None:
            del open_[request.betas]
            yield current.finish()
            current = None
        if current is None:
            current = open_[request.betas] = _OpenChunk(request.betas)
        current.add(request)
    for current in open_.values():
        yield current.finish()


class _OpenChunk:
    """A chunk being filled: its body grows in a BytesIO, whose `getvalue()` hands over the
    buffer itself (CPython shares it rather than copying a sole, exact-size buffer)."""

    def __init__(self, betas: tuple[str, ...]) -> None:
        self.betas = betas
        self.body = io.BytesIO()
        self.body.write(BODY_HEAD)
        self.ids: list[str] = []
        self.keys: list[str] = []

    def add(self, request: CompiledRequest) -> None:
        if self.ids:
            self.body.write(b",")
        self.body.write(request.line)
        self.ids.append(request.custom_id)
        self.keys.append(request.input_key)

    def finish(self) -> Chunk:
        self.body.write(BODY_TAIL)
        body = self.body.getvalue()
        self.body.close()
        return Chunk(self.betas, body, tuple(self.ids), tuple(self.keys))
