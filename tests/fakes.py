"""Small fakes behind the executor's protocols: a compiler, an in-memory Batches API with
scripted outcomes and faults, and a clock that never sleeps."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from runner import spec
from runner.backend import CreateUncertain, RemoteBatch, ResultsUnavailable, Retryable
from runner.compile import Chunk, CompiledRequest
from runner.executor.context import Compiler, Context
from runner.sinks.jsonl import JsonlSink
from runner.spec import JobSpec
from runner.store import Store


def FakeRequest(
    custom_id: str,
    input_key: str,
    input_path: str | None,
    line: bytes,
    betas: tuple[str, ...] = (),
) -> CompiledRequest:
    return CompiledRequest(custom_id, input_key, input_path, line, betas)


class FakeCompiler:
    """Inputs are `inputs[key] = prompt`; the custom_id hashes both, like the real one."""

    def __init__(self, inputs: dict[str, str]) -> None:
        self.inputs = inputs

    def as_compiler(self) -> Compiler:
        return Compiler(self.iter_requests, self.make_chunks)

    def iter_requests(self, job: JobSpec) -> Iterator[CompiledRequest]:
        for key in sorted(self.inputs):
            text = self.inputs[key]
            cid = "r" + hashlib.sha256(f"{key}\0{text}".encode()).hexdigest()[:32]
            params = {
                "model": job.model,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": text}],
            }
            yield FakeRequest(cid, key, key, orjson.dumps({"custom_id": cid, "params": params}))

    def make_chunks(
        self, requests: Iterable[CompiledRequest], max_requests: int, max_bytes: int
    ) -> Iterator[Chunk]:
        it = iter(requests)
        while batch := list(itertools.islice(it, max_requests)):
            body = b'{"requests":[' + b",".join(r.line for r in batch) + b"]}"
            yield Chunk((), body, tuple(r.custom_id for r in batch))


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


Outcome = Callable[[str, int], dict[str, Any]]  # (custom_id, nth submission) -> result


def succeeded(cid: str, n: int) -> dict[str, Any]:
    message = {
        "id": f"msg_{cid[:8]}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": f"answer {cid}"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 2,
            "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 0},
        },
    }
    return {"type": "succeeded", "message": message}


def errored(etype: str, message: str = "boom") -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": etype, "message": message}},
    }


@dataclass
class FakeBatch:
    id: str
    custom_ids: list[str]
    created_ts: float
    polls_left: int
    canceled: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.polls_left <= 0 or self.canceled


class FakeAPI:
    """An in-memory Batches API. A batch ends after `latency` retrieves. Faults are queues of
    exceptions per call name, popped one per call."""

    def __init__(self, clock: FakeClock, outcome: Outcome = succeeded, latency: int = 1) -> None:
        self.clock = clock
        self.outcome = outcome
        self.latency = latency
        self.batches: dict[str, FakeBatch] = {}
        self.submissions: dict[str, int] = {}
        self.faults: dict[str, list[BaseException | str]] = {}
        self.calls: dict[str, int] = {}
        self.truncate_next = 0

    # accounting the chaos assertions rely on
    def double_billed(self) -> list[str]:
        billed: dict[str, int] = {}
        for b in self.batches.values():
            for r in b.results:
                if r["result"]["type"] == "succeeded":
                    billed[r["custom_id"]] = billed.get(r["custom_id"], 0) + 1
        return [c for c, n in billed.items() if n > 1]

    def _fault(self, name: str) -> BaseException | str | None:
        self.calls[name] = self.calls.get(name, 0) + 1
        queue = self.faults.get(name)
        return queue.pop(0) if queue else None

    def _remote(self, b: FakeBatch) -> RemoteBatch:
        created = datetime.fromtimestamp(b.created_ts, UTC).isoformat().replace("+00:00", "Z")
        if not b.ended:
            counts = {
                "processing": len(b.custom_ids),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            }
            return RemoteBatch(
                b.id, "canceling" if b.canceled else "in_progress", created, b.created_ts, counts
            )
        self._finish(b)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for r in b.results:
            counts[r["result"]["type"]] += 1
        counts["canceled"] += len(b.custom_ids) - len(b.results)
        return RemoteBatch(b.id, "ended", created, b.created_ts, counts)

    def _finish(self, b: FakeBatch) -> None:
        if b.results:
            return
        for cid in b.custom_ids:
            result = (
                {"type": "canceled"} if b.canceled else self.outcome(cid, self.submissions[cid])
            )
            b.results.append({"custom_id": cid, "result": result})

    def create(self, body: bytes, betas: Sequence[str]) -> RemoteBatch:
        fault = self._fault("create")
        if isinstance(fault, BaseException):
            raise fault
        ids = [r["custom_id"] for r in orjson.loads(body)["requests"]]
        for cid in ids:
            self.submissions[cid] = self.submissions.get(cid, 0) + 1
        b = FakeBatch(f"msgbatch_{len(self.batches):04d}", ids, self.clock.now(), self.latency)
        self.batches[b.id] = b
        if fault == "commit_then_fail":
            raise CreateUncertain("HTTP 500 api_error: committed then failed")
        return self._remote(b)

    def retrieve(self, batch_id: str) -> RemoteBatch:
        fault = self._fault("retrieve")
        if isinstance(fault, BaseException):
            raise fault
        b = self.batches[batch_id]
        b.polls_left -= 1
        return self._remote(b)

    def cancel(self, batch_id: str) -> RemoteBatch:
        b = self.batches[batch_id]
        if not b.ended:
            b.canceled = True
        return self._remote(b)

    def newest_batch_id(self) -> str | None:
        return max(self.batches) if self.batches else None

    def list_batches(self, stop_at: str | None = None) -> Iterator[RemoteBatch]:
        fault = self._fault("list")
        if isinstance(fault, BaseException):
            raise fault
        for bid in sorted(self.batches, reverse=True):
            if bid == stop_at:
                return
            yield self._remote(self.batches[bid])

    def results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        b = self.batches[batch_id]
        self._finish(b)
        if self.truncate_next:
            self.truncate_next -= 1
            yield from b.results[: len(b.results) // 2]
            raise ResultsUnavailable("cut")
        yield from b.results


def write_job(tmp: Path, name: str = "demo", extra: str = "") -> Path:
    (tmp / "data").mkdir(exist_ok=True)
    job = tmp / f"{name}.yaml"
    job.write_text(
        f"version: 1\nname: {name}\ninput:\n  glob: data/*.txt\nmodel: claude-sonnet-4-6\n"
        "max_tokens: 16\nprompt: 'Say {{ input.text }}'\n"
        f"output:\n  type: jsonl\n  path: out/{name}.jsonl\n"
        "poll: {interval: 1s, max_interval: 4s}\n" + extra
    )
    return job


def price(model: str, usage: Mapping[str, Any]) -> tuple[float | None, float | None]:
    return 0.001, 0.002


@dataclass
class Harness:
    """One job, its store, sink, fake API and clock; `context()` builds a fresh run."""

    tmp: Path
    inputs: dict[str, str]
    extra: str = ""
    outcome: Outcome = succeeded
    latency: int = 1

    def __post_init__(self) -> None:
        self.job = spec.load_job(write_job(self.tmp, extra=self.extra))
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock, self.outcome, self.latency)
        self.compiler = FakeCompiler(self.inputs)
        self.state = self.tmp / "state"

    def context(self) -> Context:
        store = Store.open(self.state)
        return Context(
            job=self.job,
            store=store,
            backend=self.api,
            sink=JsonlSink(self.job.output.local),
            compiler=self.compiler.as_compiler(),
            clock=self.clock,
            price=price,
        )

    def lines(self) -> list[dict[str, Any]]:
        path = self.job.output.local
        return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []

    def dead_lines(self) -> list[dict[str, Any]]:
        path = self.job.output.local.with_name("demo.jsonl.dead.jsonl")
        return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def retryable(after: float | None = None) -> Retryable:
    return Retryable("HTTP 429 rate_limit_error: slow down", after)
