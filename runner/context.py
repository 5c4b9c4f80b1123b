"""What one run of the executor works with: the pieces, behind small protocols so that the
unit tests swap each one (a fake backend, a fake compiler, a clock that never sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runner.remote import RemoteBatch
from runner.sinks import Sink
from runner.spec import JobSpec
from runner.store import Store


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: the one place batchrun sleeps."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class CompiledRequest(Protocol):
    @property
    def custom_id(self) -> str: ...
    @property
    def input_key(self) -> str: ...
    @property
    def input_path(self) -> str | None: ...
    @property
    def line(self) -> bytes: ...
    @property
    def betas(self) -> tuple[str, ...]: ...


class Chunk(Protocol):
    @property
    def betas(self) -> tuple[str, ...]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def custom_ids(self) -> tuple[str, ...]: ...


class Compiler(Protocol):
    """runner.compile's two functions (docs/internals.md)."""

    def iter_requests(self, job: JobSpec) -> Iterator[CompiledRequest]: ...
    def make_chunks(
        self, requests: Iterable[Any], max_requests: int, max_bytes: int
    ) -> Iterator[Chunk]: ...


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
