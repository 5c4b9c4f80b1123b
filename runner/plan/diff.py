"""The diff of a sync pass: the requests a pass renders against stored state, request by
request, into a plan; with a `Writer`, the same pass also records them (executor/sync.py).

So `plan` and `run` share one walk: the plan a user reads is the plan a run executes.
Memory stays flat: states are looked up a page at a time; only a full pass holds the set of
input keys state knows, to count what was superseded or removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from runner.compile import CompiledRequest
from runner.compile.index import INDEX_META, IncrementalSource, Rendered, Waiting
from runner.records import RequestState
from runner.spec.model import JobSpec

PAGE = 1000  # requests looked up and recorded together


class StateReads(Protocol):
    """What a pass reads of a job's state (`runner.store.Store` has it all)."""

    def get_meta(self, key: str) -> str | None: ...
    def states(self, custom_ids: Sequence[str]) -> dict[str, RequestState]: ...
    def status_counts(self, current_only: bool = True) -> dict[str, int]: ...
    def iter_states(self, current_only: bool = True) -> Iterator[RequestState]: ...
    def waiting_requests(self) -> list[tuple[str, str, str | None]]: ...
    def current_keys(self) -> set[str]: ...


class Source(Protocol):
    """The requests a pass renders (compile/index.py's `IncrementalSource`, or all of them)."""

    full: bool  # every input is rendered: state's other requests are no longer current
    removed: list[str]  # after the iteration: custom_ids of inputs that are gone

    def scan(self) -> bool: ...
    def __iter__(self) -> Iterator[Rendered]: ...
    def index(self) -> str | None: ...


class Builder(Protocol):
    """What the walk feeds (`runner.plan.PlanBuilder`)."""

    def add(
        self,
        request: CompiledRequest,
        params: Mapping[str, Any] | None,
        state: RequestState | None,
        key_known: bool,
    ) -> bool: ...
    def add_unrendered(self, statuses: Mapping[str, int]) -> None: ...


class Writer(Protocol):
    """Records a pass in state as it goes (executor/sync.py); absent for `plan`."""

    def begin(self, full: bool) -> None: ...
    def page(self, rendered: Sequence[Rendered], submit: Sequence[bool]) -> None: ...
    def end(self, removed: Sequence[str], index: str | None) -> None: ...


class FullSource:
    """Every request of the job, rendered by any compiler (tests pass fakes)."""

    full = True

    def __init__(self, requests: Iterable[tuple[CompiledRequest, Mapping[str, Any] | None]]):
        self._requests = requests
        self.removed: list[str] = []

    def scan(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Rendered]:
        for request, params in self._requests:
            yield Rendered(request, params)

    def index(self) -> str | None:
        return None


class MappingState:
    """Stored states given as a mapping (custom_id -> state): a job that never ran, or a
    test's. It has no index, so a pass against it renders everything."""

    def __init__(self, states: Mapping[str, RequestState]) -> None:
        self._states = states

    def get_meta(self, key: str) -> str | None:
        return None

    def states(self, custom_ids: Sequence[str]) -> dict[str, RequestState]:
        return {c: self._states[c] for c in custom_ids if c in self._states}

    def status_counts(self, current_only: bool = True) -> dict[str, int]:
        return dict(Counter(s.status for s in self._states.values()))

    def iter_states(self, current_only: bool = True) -> Iterator[RequestState]:
        return iter(self._states.values())

    def waiting_requests(self) -> list[tuple[str, str, str | None]]:
        return []

    def current_keys(self) -> set[str]:
        return {s.input_key for s in self._states.values()}


_EMPTY = MappingState({})


def incremental_source(job: JobSpec, state: StateReads) -> IncrementalSource:
    """The real compiler's source: what changed since the index `state` holds, plus the
    inputs of requests that wait to be submitted."""
    waiting = [Waiting(*row) for row in state.waiting_requests()]
    return IncrementalSource(
        job,
        state.get_meta(INDEX_META),
        waiting,
        known_keys=state.current_keys,
    )


def walk(state: StateReads, source: Source, builder: Builder, writer: Writer | None = None) -> int:
    """Feed every request `source` renders to `builder`, classified against `state`, and
    the requests of the inputs it did not render by their status. With `writer`, record the
    pass as it goes. Returns how many input keys state knows that are no longer inputs."""
    if not source.scan():
        builder.add_unrendered(state.status_counts())
        return 0
    known: set[str] = state.current_keys() if source.full else set()
    before = {} if source.full else state.status_counts()
    # A state that never recorded a request (a first pass) has no state to look up.
    if source.full and not known and not state.status_counts(current_only=False):
        state = _EMPTY
    if writer is not None:
        writer.begin(source.full)
    seen_known = 0
    replaced: list[str] = []
    page: list[Rendered] = []
    for rendered in source:
        page.append(rendered)
        if len(page) >= PAGE:
            seen_known += _page(state, builder, writer, page, known, replaced)
            page = []
    seen_known += _page(state, builder, writer, page, known, replaced)
    replaced += source.removed
    builder.add_unrendered(_minus(before, state, replaced))
    if writer is not None:
        writer.end(source.removed, source.index())
    return len(known) - seen_known if source.full else len(source.removed)


def _page(
    state: StateReads,
    builder: Builder,
    writer: Writer | None,
    page: list[Rendered],
    known: set[str],
    replaced: list[str],
) -> int:
    """Classify one page; returns how many of its keys state knew (full passes)."""
    if not page:
        return 0
    states = state.states([r.request.custom_id for r in page])
    seen_known = 0
    submit: list[bool] = []
    for r in page:
        key_known = r.request.input_key in known if known else r.replaces is not None
        seen_known += key_known
        if r.replaces is not None:
            replaced.append(r.replaces)
        submit.append(builder.add(r.request, r.params, states.get(r.request.custom_id), key_known))
    if writer is not None:
        writer.page(page, submit)
    return seen_known


def _minus(before: Mapping[str, int], state: StateReads, replaced: Sequence[str]) -> dict[str, int]:
    """Status counts of the current requests before the pass, less those of the requests
    it rendered again or found gone: what remains belongs to inputs it left alone."""
    left = Counter(before)
    for i in range(0, len(replaced), PAGE):
        for s in state.states(replaced[i : i + PAGE]).values():
            left[s.status] -= 1
    return {k: v for k, v in left.items() if v > 0}
