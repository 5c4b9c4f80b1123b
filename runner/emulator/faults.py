"""Seeded fault decisions. Each kind of decision draws from its own random stream, so the
same seed and the same sequence of calls give the same faults, and adding a fault of one
kind does not shift the draws of another."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Mapping

from runner.emulator.config import EmulatorConfig, HttpFault


class Faults:
    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}

    def _draw(self, stream: str) -> float:
        with self._lock:
            rng = self._streams.get(stream)
            if rng is None:
                rng = self._streams[stream] = random.Random(  # noqa: S311 (reproducible, not secret)
                    f"{self._config.seed}:{stream}"
                )
            return rng.random()

    def http_fault(self, endpoint: str) -> HttpFault | None:
        """The injected error for this call of `endpoint`, if any (first rule that fires)."""
        for i, fault in enumerate(self._config.http_faults):
            if fault.endpoint == endpoint and self._draw(f"http:{i}") < fault.rate:
                return fault
        return None

    def commit_then_fail(self) -> bool:
        rate = self._config.create_commit_then_fail
        return rate > 0 and self._draw("commit_then_fail") < rate

    def truncate_results(self) -> bool:
        rate = self._config.results_truncate
        return rate > 0 and self._draw("results_truncate") < rate

    def latency(self) -> float:
        lat = self._config.latency
        if lat.max_s <= lat.min_s:
            return lat.min_s
        return lat.min_s + (lat.max_s - lat.min_s) * self._draw("latency")

    def outcome(self, custom_id: str, attempt: int) -> str:
        """`succeeded`, `expired` or an error type for the attempt-th submission of an id.

        Keyed by (seed, custom_id, attempt) rather than a stream so that a request's fate
        does not depend on how the runner happened to chunk or order its batches.
        """
        shares = self._config.outcomes
        if shares.errored <= 0 and shares.expired <= 0:
            return "succeeded"
        u = _unit(f"{self._config.seed}:outcome:{custom_id}:{attempt}")
        if u < shares.expired:
            return "expired"
        if u < shares.expired + shares.errored:
            return _weighted(self._config.errored_types, _unit(f"{self._config.seed}:{u}"))
        return "succeeded"


def _unit(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _weighted(weights: Mapping[str, float], u: float) -> str:
    total = sum(weights.values())
    acc = 0.0
    for name, weight in weights.items():
        acc += weight / total
        if u < acc:
            return name
    return next(reversed(list(weights)))
