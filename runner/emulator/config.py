"""The emulator's configuration: faults, latency, limits and scripted answers.

A config file (YAML or JSON) is checked as a whole and every problem is reported at once as
`FILE: key: problem (fix: ...)`, so a user fixes a broken chaos config in one pass.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from runner.errors import BatchrunError

ENDPOINTS = (
    "create",
    "retrieve",
    "list",
    "cancel",
    "delete",
    "results",
    "count_tokens",
    "models",
)
ERROR_TYPES = (
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
)
STOP_REASONS = (
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
)


class ConfigError(BatchrunError):
    """The emulator config is invalid; the message lists every problem with its fix."""


@dataclass(frozen=True)
class Latency:
    """Processing time of one batch on the emulated clock, drawn uniformly per batch."""

    min_s: float = 0.0
    max_s: float = 0.0


@dataclass(frozen=True)
class Outcomes:
    """Shares of requests that end `errored` or `expired` instead of `succeeded`."""

    errored: float = 0.0
    expired: float = 0.0


@dataclass(frozen=True)
class HttpFault:
    """Answer a share (`rate`) of calls to one endpoint with an error status."""

    endpoint: str
    status: int
    rate: float
    retry_after: float | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    error_code: str | None = None  # error.details.error_code; the SDK maps some to classes


@dataclass(frozen=True)
class ResponseRule:
    """A scripted answer for requests whose custom_id matches a regex or whose prompt
    contains a substring (both must match when both are given)."""

    custom_id: str | None = None
    prompt_contains: str | None = None
    text: str | None = None
    stop_reason: str | None = None
    errored: str | None = None
    message: str | None = None

    def matches(self, custom_id: str, prompt: str) -> bool:
        if self.custom_id is not None and not re.search(self.custom_id, custom_id):
            return False
        return self.prompt_contains is None or self.prompt_contains in prompt


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour; defaults are a fault-free, instant
    emulator with the real API's limits."""

    seed: int = 0
    latency: Latency = field(default_factory=Latency)
    outcomes: Outcomes = field(default_factory=Outcomes)
    errored_types: Mapping[str, float] = field(default_factory=lambda: {"api_error": 1.0})
    http_faults: tuple[HttpFault, ...] = ()
    create_commit_then_fail: float = 0.0
    results_truncate: float = 0.0
    max_requests_per_batch: int = 100_000
    max_body_bytes: int = 268_435_456
    queue_limit: int = 500_000
    cancel_drain_s: float = 0.0
    read_timeout_s: float = 30.0  # a connection idle or stalled this long mid-request is closed
    responses: tuple[ResponseRule, ...] = ()


ConfigSource = EmulatorConfig | Mapping[str, Any] | str | Path | None


def load_config(source: ConfigSource) -> EmulatorConfig:
    """Build a checked `EmulatorConfig` from None, a mapping, a config or a YAML/JSON path."""
    if source is None:
        return EmulatorConfig()
    if isinstance(source, EmulatorConfig):
        return source
    if isinstance(source, (str, Path)):
        return _from_file(Path(source))
    return _from_mapping(source, "<config>")


def _from_file(path: Path) -> EmulatorConfig:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the emulator config: {exc.strerror}") from exc
    try:
        data = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the emulator config must be a mapping of keys to values")
    return _from_mapping(data, str(path))


def _from_mapping(data: Mapping[str, Any], origin: str) -> EmulatorConfig:
    checker = _Checker(origin)
    config = checker.config(data)
    if checker.problems:
        raise ConfigError("\n".join(checker.problems))
    return config


class _Checker:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.problems: list[str] = []

    def fail(self, key: str, problem: str, fix: str) -> None:
        self.problems.append(f"{self.origin}: {key}: {problem} (fix: {fix})")

    def unknown_keys(self, data: Mapping[str, Any], known: list[str], prefix: str) -> None:
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                fix = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"
                self.fail(f"{prefix}{key}", "unknown key", fix)

    def number(self, data: Mapping[str, Any], key: str, prefix: str, lo: float, hi: float) -> Any:
        value = data.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi
        if not ok:
            self.fail(f"{prefix}{key}", f"got {value!r}", f"a number from {lo} to {hi}")
            return None
        return value

    def integer(self, data: Mapping[str, Any], key: str, lo: int, hi: int) -> Any:
        value = data.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi):
            self.fail(key, f"got {value!r}", f"an integer from {lo} to {hi}")
            return None
        return value

    def mapping(self, value: Any, key: str) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.fail(key, f"got {value!r}", "a mapping")
            return None
        return value

    def config(self, data: Mapping[str, Any]) -> EmulatorConfig:
        names = [f.name for f in fields(EmulatorConfig)]
        self.unknown_keys(data, names, "")
        values: dict[str, Any] = {}
        for key in data:
            if key in names:
                parsed = getattr(self, f"_{key}")(data)
                if parsed is not None:
                    values[key] = parsed
        return replace(EmulatorConfig(), **values)

    def _seed(self, data: Mapping[str, Any]) -> Any:
        return self.integer(data, "seed", -(2**63), 2**63 - 1)

    def _max_requests_per_batch(self, data: Mapping[str, Any]) -> Any:
        return self.integer(data, "max_requests_per_batch", 1, 10**9)

    def _max_body_bytes(self, data: Mapping[str, Any]) -> Any:
        return self.integer(data, "max_body_bytes", 1, 2**40)

    def _queue_limit(self, data: Mapping[str, Any]) -> Any:
        return self.integer(data, "queue_limit", 1, 10**12)

    def _create_commit_then_fail(self, data: Mapping[str, Any]) -> Any:
        return self.number(data, "create_commit_then_fail", "", 0.0, 1.0)

    def _results_truncate(self, data: Mapping[str, Any]) -> Any:
        return self.number(data, "results_truncate", "", 0.0, 1.0)

    def _cancel_drain_s(self, data: Mapping[str, Any]) -> Any:
        return self.number(data, "cancel_drain_s", "", 0.0, 1e9)

    def _read_timeout_s(self, data: Mapping[str, Any]) -> Any:
        return self.number(data, "read_timeout_s", "", 0.01, 86400.0)

    def _latency(self, data: Mapping[str, Any]) -> Latency | None:
        sub = self.mapping(data["latency"], "latency")
        if sub is None:
            return None
        self.unknown_keys(sub, ["min_s", "max_s"], "latency.")
        lo = self.number(sub, "min_s", "latency.", 0.0, 1e9) if "min_s" in sub else 0.0
        hi = self.number(sub, "max_s", "latency.", 0.0, 1e9) if "max_s" in sub else lo
        if lo is None or hi is None:
            return None
        if hi < lo:
            self.fail("latency.max_s", f"{hi} is below min_s {lo}", "make max_s >= min_s")
            return None
        return Latency(float(lo), float(hi))

    def _outcomes(self, data: Mapping[str, Any]) -> Outcomes | None:
        sub = self.mapping(data["outcomes"], "outcomes")
        if sub is None:
            return None
        self.unknown_keys(sub, ["errored", "expired"], "outcomes.")
        errored = self.number(sub, "errored", "outcomes.", 0.0, 1.0) if "errored" in sub else 0.0
        expired = self.number(sub, "expired", "outcomes.", 0.0, 1.0) if "expired" in sub else 0.0
        if errored is None or expired is None:
            return None
        if errored + expired > 1.0:
            self.fail("outcomes", "errored + expired is above 1", "make the shares sum to <= 1")
            return None
        return Outcomes(float(errored), float(expired))

    def _errored_types(self, data: Mapping[str, Any]) -> dict[str, float] | None:
        sub = self.mapping(data["errored_types"], "errored_types")
        if sub is None:
            return None
        self.unknown_keys(sub, list(ERROR_TYPES), "errored_types.")
        weights = {k: self.number(sub, k, "errored_types.", 0.0, 1e9) for k in sub}
        if any(w is None for w in weights.values()) or set(weights) - set(ERROR_TYPES):
            return None
        if not weights or sum(weights.values()) <= 0:
            self.fail("errored_types", "no positive weight", "give at least one weight > 0")
            return None
        return {k: float(v) for k, v in weights.items()}

    def _http_faults(self, data: Mapping[str, Any]) -> tuple[HttpFault, ...] | None:
        items = data["http_faults"]
        if not isinstance(items, list):
            self.fail("http_faults", f"got {items!r}", "a list of {endpoint, status, rate}")
            return None
        faults = [self._http_fault(item, f"http_faults[{i}]") for i, item in enumerate(items)]
        return tuple(f for f in faults if f is not None)

    def _http_fault(self, item: Any, key: str) -> HttpFault | None:
        sub = self.mapping(item, key)
        if sub is None:
            return None
        known = [f.name for f in fields(HttpFault)]
        self.unknown_keys(sub, known, f"{key}.")
        start = len(self.problems)
        endpoint = sub.get("endpoint")
        if endpoint not in ENDPOINTS:
            self.fail(f"{key}.endpoint", f"got {endpoint!r}", f"one of {', '.join(ENDPOINTS)}")
        status = sub.get("status")
        if not (isinstance(status, int) and 400 <= status <= 599):
            self.fail(f"{key}.status", f"got {status!r}", "an HTTP error status from 400 to 599")
        rate = self.number(sub, "rate", f"{key}.", 0.0, 1.0)
        after = self._optional_number(sub, "retry_after", key)
        after_ms = self._optional_number(sub, "retry_after_ms", key)
        retry = sub.get("should_retry")
        if retry is not None and not isinstance(retry, bool):
            self.fail(f"{key}.should_retry", f"got {retry!r}", "true or false")
        code = sub.get("error_code")
        if code is not None and not isinstance(code, str):
            self.fail(f"{key}.error_code", f"got {code!r}", "a string such as ramp_limit_exceeded")
        if len(self.problems) > start:
            return None
        return HttpFault(str(endpoint), int(status or 0), float(rate), after, after_ms, retry, code)

    def _optional_number(self, sub: Mapping[str, Any], name: str, key: str) -> float | None:
        if sub.get(name) is None:
            return None
        value = self.number(sub, name, f"{key}.", 0.0, 4_294_967.0)
        return None if value is None else float(value)

    def _responses(self, data: Mapping[str, Any]) -> tuple[ResponseRule, ...] | None:
        items = data["responses"]
        if not isinstance(items, list):
            self.fail("responses", f"got {items!r}", "a list of rules")
            return None
        rules = [self._rule(item, f"responses[{i}]") for i, item in enumerate(items)]
        return tuple(r for r in rules if r is not None)

    def _rule(self, item: Any, key: str) -> ResponseRule | None:
        sub = self.mapping(item, key)
        if sub is None:
            return None
        self.unknown_keys(sub, [f.name for f in fields(ResponseRule)], f"{key}.")
        start = len(self.problems)
        for name in ("custom_id", "prompt_contains", "text", "message"):
            if sub.get(name) is not None and not isinstance(sub[name], str):
                self.fail(f"{key}.{name}", f"got {sub[name]!r}", "a string")
        self._check_regex(sub.get("custom_id"), key)
        if sub.get("stop_reason") not in (None, *STOP_REASONS):
            self.fail(f"{key}.stop_reason", f"got {sub['stop_reason']!r}", _one_of(STOP_REASONS))
        if sub.get("errored") not in (None, *ERROR_TYPES):
            self.fail(f"{key}.errored", f"got {sub['errored']!r}", _one_of(ERROR_TYPES))
        if sub.get("custom_id") is None and sub.get("prompt_contains") is None:
            self.fail(key, "matches nothing", "give `custom_id` (regex) or `prompt_contains`")
        if len(self.problems) > start:
            return None
        known = {f.name for f in fields(ResponseRule)}
        return ResponseRule(**{k: v for k, v in sub.items() if k in known})

    def _check_regex(self, pattern: Any, key: str) -> None:
        if not isinstance(pattern, str):
            return
        try:
            re.compile(pattern)
        except re.error as exc:
            self.fail(f"{key}.custom_id", f"bad regex: {exc}", "a Python regular expression")


def _one_of(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(values)
