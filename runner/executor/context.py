"""What one run of the executor works with: the pieces, behind small protocols so that the
unit tests swap each one (a fake backend, a fake compiler, a clock that never sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from runner.backend import RemoteBatch
from runner.sinks import Sink
from runner.spec.model import JobSpec
from runner.store import Store

if TYPE_CHECKING:
    from runner.compile import Chunk, CompiledRequest
    from runner.compile.index import Waiting
    from runner.plan.diff import Source, StateReads


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: the one place batchrun sleeps."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Compiler:
    """What the executor needs of compile (runner.compile): the job's requests, chunks of
    them within the limits, and optionally the two that make a pass cost what changed: a
    source of the requests changed since the stored input index, and the requests of given
    inputs (retries). Without them every pass renders every input. The unit tests pass fakes."""

    iter_requests: Callable[[JobSpec], Iterator[CompiledRequest]]
    make_chunks: Callable[[Iterable[CompiledRequest], int, int], Iterator[Chunk]]
    source: Callable[[JobSpec, StateReads], Source] | None = None
    requests_for: Callable[[JobSpec, Sequence[Waiting]], Iterator[CompiledRequest]] | None = None


class BackendLike(Protocol):
    def create(self, body: bytes, betas: Sequence[str]) -> RemoteBatch: ...
    def retrieve(self, batch_id: str) -> RemoteBatch: ...
    def cancel(self, batch_id: str) -> RemoteBatch: ...
    def newest_batch_id(self) -> str | None: ...
    def list_batches(self, stop_at: str | None = None) -> Iterator[RemoteBatch]: ...
    def results(self, batch_id: str) -> Iterator[dict[str, Any]]: ...


# (model, usage) -> (cost at batch prices, cost at standard prices); None: price unknown.
Pricer = Callable[[str, Mapping[str, Any]], tuple[float | None, float | None]]


def no_price(model: str, usage: Mapping[str, Any]) -> tuple[float | None, float | None]:
    return None, None


@dataclass
class Context:
    job: JobSpec
    store: Store
    backend: BackendLike
    sink: Sink
    compiler: Compiler
    clock: Clock = field(default_factory=SystemClock)
    price: Pricer = no_price
    progress: Callable[[str], None] = lambda _text: None
    # After each pass: how long until the job's next one (None: finished). A display hook.
    on_pass: Callable[[float | None], None] = lambda _wait: None
