"""Logging setup: structlog, a readable console renderer on a terminal, JSON lines otherwise.

Log output goes to stderr so that stdout stays for command results (`plan --json`, ...).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "console", "json"]

_SECRET_KEYS = ("api_key", "authorization", "x-api-key", "token", "secret")
# Anthropic keys and tokens by shape, wherever they sit in a text (an error message that
# quoted a header, a traceback): a second line of defence behind never logging them.
_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_-]{8,}")


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop the value of any field whose name says it holds a secret, and mask anything
    shaped like an Anthropic key inside text values (including a formatted traceback)."""
    for key in list(event):
        value = event[key]
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "[redacted]"
        elif isinstance(value, str) and "sk-ant-" in value:
            event[key] = _KEY_SHAPE.sub("sk-ant-[redacted]", value)
    return event


def _processors() -> list[Any]:
    """Shared by both setups. Tracebacks are formatted before redaction so that the mask
    covers their text too."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_secrets,
    ]


def configure(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Set up structlog once per process. `auto` is console on a terminal, JSON otherwise."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def configure_for_library() -> None:
    """For runner.api: unless the host application set structlog up (then its choice
    stands), send batchrun's events as JSON to the stdlib logger named after the module
    (`batchrun.executor`, ...), which Airflow and Dagster capture; never to stdout, where
    structlog's own default would print."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[*_processors(), structlog.processors.JSONRenderer()],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get(name: str) -> Any:
    """A bound logger for a module."""
    return structlog.get_logger(name)
