"""`notify:`: tell someone when a scheduled job finishes or gets dead letters.

Each event is sent once: after a channel (the webhook, the command) delivered it, a mark in
the job's state says so, and later passes that see the same event stay quiet. A delivery
that fails is logged and tried again by the next pass. The body is the run report of
`run --json` for the job (plus `event` and a one-line `text`, which chat webhooks show);
neither the webhook URL (a secret: it is read from an environment variable) nor an API key
ever reaches it, a log line or the command's environment.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson

from runner import log
from runner.spec.model import NotifySpec

_log = log.get("batchrun.notify")
EVENTS = ("finished", "dead_letters")
TIMEOUT_S = 10.0  # a webhook that does not answer must not hold a cron pass for long
COMMAND_TIMEOUT_S = 60.0
# Never handed to the notify command: the API key, and a state URL with its password.
_SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "BATCHRUN_STATE_URL")


class Marks(Protocol):
    """The job's state, for the marks of what was sent."""

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


def event_marks(finished: bool, newest_batch: str | None, dead_ids: list[str]) -> dict[str, str]:
    """The events a job's state shows now, each with the mark that identifies it: the job
    finished after its newest batch; this set of dead letters."""
    marks: dict[str, str] = {}
    if finished and newest_batch is not None:
        marks["finished"] = newest_batch
    if dead_ids:
        digest = hashlib.sha256("\n".join(sorted(dead_ids)).encode()).hexdigest()[:16]
        marks["dead_letters"] = f"{len(dead_ids)}:{digest}"
    return marks


def text_of(event: str, report: Mapping[str, Any]) -> str:
    counts = report.get("requests", {})
    cost = report.get("cost_usd")
    money = f", ${cost:.4f}" if cost else ""
    if event == "finished":
        return (
            f"batchrun: {report['job']} finished: {counts.get('succeeded', 0)} succeeded, "
            f"{counts.get('dead', 0)} dead letters{money}"
        )
    return f"batchrun: {report['job']} has {counts.get('dead', 0)} dead letters{money}"


def send(
    spec: NotifySpec,
    job_dir: Path,
    report: Mapping[str, Any],
    marks: Mapping[str, str],
    state: Marks,
) -> list[str]:
    """Send each due event through each channel that has not sent it yet; returns the
    `event:channel` pairs delivered now."""
    sent: list[str] = []
    for event, mark in marks.items():
        if event not in spec.on:
            continue
        body = orjson.dumps({"event": event, "text": text_of(event, report), **report})
        for channel in _channels(spec):
            key = f"notify_{event}_{channel}"
            if state.get_meta(key) == mark:
                continue
            if _deliver(channel, spec, job_dir, event, body):
                state.set_meta(key, mark)
                sent.append(f"{event}:{channel}")
    return sent


def _channels(spec: NotifySpec) -> list[str]:
    return [c for c, on in (("webhook", spec.webhook_env), ("command", spec.command)) if on]


def _deliver(channel: str, spec: NotifySpec, job_dir: Path, event: str, body: bytes) -> bool:
    if channel == "webhook":
        assert spec.webhook_env is not None
        return _post(spec.webhook_env, event, body)
    return _run(spec, job_dir, event, body)


def _post(env: str, event: str, body: bytes) -> bool:
    url = os.environ.get(env, "").strip()
    if not url:
        _log.warning(f"notify.webhook_env: ${env} is not set: no {event} notification sent")
        return False
    if not url.startswith(("https://", "http://")):
        _log.warning(
            f"notify.webhook_env: ${env} is not an http(s) URL: no {event} notification sent"
        )
        return False
    log.add_secret(url)  # a webhook URL is a credential: masked if anything quotes it
    # An http(s) URL only (checked above): no file: or custom scheme is ever opened.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        _log.warning(f"notify: the webhook in ${env} answered HTTP {exc.code}: retried next run")
        return False
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        _log.warning(
            f"notify: the webhook in ${env} failed ({type(reason).__name__}): retried next run"
        )
        return False
    _log.info("notification sent", notification=event, channel=f"webhook ${env}")
    return True


def _run(spec: NotifySpec, job_dir: Path, event: str, body: bytes) -> bool:
    assert spec.command is not None
    argv = spec.command
    hidden = (*_SECRET_ENV, spec.webhook_env)  # the webhook URL is a credential too
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["BATCHRUN_EVENT"] = event
    try:
        done = subprocess.run(
            argv, input=body, cwd=job_dir, env=env, capture_output=True,
            timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log.warning(
            f"notify.command {argv[0]!r} did not run ({type(exc).__name__}): retried next run"
        )
        return False
    if done.returncode != 0:
        _log.warning(f"notify.command {argv[0]!r} exited {done.returncode}: retried next run")
        return False
    _log.info("notification sent", notification=event, channel="command")
    return True
