"""The job file's JSON Schema (the single source of truth for the format), its defaults,
and the units its values are written in."""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from runner import limits

DEFAULT_MAX_BYTES = limits.MAX_BATCH_BYTES
DEFAULT_MAX_REQUESTS = limits.MAX_BATCH_REQUESTS
DEFAULT_MAX_IN_FLIGHT = 200_000
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_POLL_INTERVAL_S = 30.0
DEFAULT_POLL_MAX_INTERVAL_S = 600.0


@functools.cache
def schema_text() -> str:
    """The job JSON Schema: package data in a wheel, `schemas/` in a source checkout."""
    packaged = resources.files("runner").joinpath("schemas/job.schema.json")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).parents[2] / "schemas" / "job.schema.json").read_text("utf-8")


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(schema_text())
    return loaded


# ---------------------------------------------------------------------------------------
# Units


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}


def parse_duration(text: str) -> float:
    """`30s`, `10m`, `1h30m`, `250ms` -> seconds. The schema has already checked the form."""
    return sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h|d)", text))


def parse_size(value: int | str) -> int:
    """`256MiB`, `100 MB`, 1024 -> bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"([0-9.]+) ?([A-Za-z]+)", value.strip())
    if not m:
        raise ValueError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
