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
    them within the limits, and optionally a fingerprint that proves the inputs unchanged
    without reading them. The unit tests pass fakes of each."""

    iter_requests: Callable[[JobSpec], Iterator[CompiledRequest]]
    make_chunks: Callable[[Iterable[CompiledRequest], int, int], Iterator[Chunk]]
    fingerprint: Callable[[JobSpec], str | None] | None = None


class BackendLike(Protocol):
    def create(self, body: bytes, betas: Sequence[str]) -> RemoteBatch: ...
    def retrieve(self, batch_id: str) -> RemoteBatch: ...
    def cancel(self, batch_id: str) -> RemoteBatch: ...
    def newest_batch_id(self) -> str | None: ...
    def list_batches(self, stop_at: str | None = None) -> Iterator[RemoteBatch]: ...
    def results(self, batch_id: str) -> Iterator[dict[str, Any]]: ...


# (model, usage) -> (cost at batch prices, cost at standard prices); None: price unknown.
Pricer = Callable[[str, Mapping[str, Any]], tuple[float | None, float | None]]
# Called with the custom_ids about to be submitted; raises BudgetExceeded when over budget.
BudgetCheck = Callable[[JobSpec, set[str]], None]


def no_budget(job: JobSpec, custom_ids: set[str]) -> None:
    """A budget check that allows everything."""


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
    check_budget: BudgetCheck = no_budget
    progress: Callable[[str], None] = lambda _text: None
    # After each pass: how long until the job's next one (None: finished). A display hook.
    on_pass: Callable[[float | None], None] = lambda _wait: None
