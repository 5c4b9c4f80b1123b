"""Logging setup: structlog, a readable console renderer on a terminal, JSON lines otherwise.

Log output goes to stderr so that stdout stays for command results (`plan --json`, ...).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO, cast

import structlog

LogFormat = Literal["auto", "console", "json"]

_SECRET_KEYS = ("api_key", "authorization", "x-api-key", "token", "secret")
# Anthropic keys and tokens by shape, wherever they sit in a text (an error message that
# quoted a header, a traceback): a second line of defence behind never logging them.
_KEY_SHAPE = re.compile(r"sk-ant-[A-Za-z0-9_-]{8,}")
_known: set[str] = set()  # the keys this process uses, whatever their shape
# The SDK and its HTTP client log through stdlib logging (ANTHROPIC_LOG=debug turns it on),
# tracebacks included: httpx quotes an illegal header value, the key in it.
_SDK_LOGGERS = ("anthropic", "anthropic._base_client", "httpx2", "httpx", "httpcore")


def add_secret(value: str | None) -> None:
    """Mask `value` wherever it appears in a log line from now on (keys too short to be
    real are ignored: masking them would garble ordinary text)."""
    if value and len(value.strip()) >= 8:
        _known.add(value.strip())


def mask(text: str) -> str:
    """`text` with every known key and anything shaped like an Anthropic key masked."""
    for secret in tuple(_known):  # a copy: another thread may be adding a key
        text = text.replace(secret, "[redacted]")
    return _KEY_SHAPE.sub("sk-ant-[redacted]", text)


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop the value of any field whose name says it holds a secret, and mask keys inside
    text values (including a formatted traceback)."""
    for key in list(event):
        value = event[key]
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = mask(value)
    return event


class _MaskRecords(logging.Filter):
    """The same masking for stdlib records: the message and its traceback are formatted
    here, masked, and handed on pre-formatted (a Formatter reuses `exc_text`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = mask(record.getMessage()), None
        except (TypeError, ValueError):
            record.msg, record.args = mask(str(record.msg)), None  # args did not fit msg
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def _mask_sdk_logs() -> None:
    """Filters sit on each logger that emits (a filter is not inherited by children)."""
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskRecords) for f in logger.filters):
            logger.addFilter(_MaskRecords())


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
    add_secret(os.environ.get("ANTHROPIC_API_KEY"))
    add_secret(os.environ.get("ANTHROPIC_AUTH_TOKEN"))
    _mask_sdk_logs()
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        # Strings as they are, not Python reprs: `job=quickstart`, not `job='quickstart'`.
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), repr_native_str=False)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    readable = [_plain_values] if use_console else []
    structlog.configure(
        processors=[*_processors(), *readable, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )


def _plain_values(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """On a terminal, mappings and lists read plainly (`counts=succeeded:3,errored:0`), not as
    Python reprs."""
    for key, value in event.items():
        if isinstance(value, dict):
            event[key] = ",".join(f"{k}:{v}" for k, v in value.items()) or "none"
        elif isinstance(value, list | tuple):
            event[key] = ",".join(map(str, value)) or "none"
    return event


class _Stderr:
    """Whatever `sys.stderr` is at the time of each write: the live display of `run`
    (rich) swaps it for a proxy that prints log lines above the display, not through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_for_library() -> None:
    """For runner.api: unless the host application set structlog up (then its choice
    stands), send batchrun's events as JSON to the stdlib logger named after the module
    (`batchrun.executor`, ...), which Airflow and Dagster capture; never to stdout, where
    structlog's own default would print."""
    _mask_sdk_logs()
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
