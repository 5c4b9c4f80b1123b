"""Checks of where results go: two inputs of a files sink must never land on one file, and
`notify:` must name somewhere to send.

The sink mirrors the tree below the glob's fixed base with the suffix replacing each input's
extension (`runner.globs.mirrored_name`), so `docs/a.txt` and `docs/a.csv` would share
`a.md`; validation finds that before a run silently lets one answer overwrite the other.
"""

from __future__ import annotations

from collections.abc import Iterator

from runner.errors import Diagnostic
from runner.globs import _literal_prefix, find_files, mirrored_name
from runner.spec.raw import RawJob

_DEFAULT_SUFFIX = {"text": ".md", "json": ".json", "message": ".json"}
MAX_LISTED = 5  # collisions named one by one; the rest are counted


def check_files_naming(job: RawJob) -> Iterator[Diagnostic]:
    """Refuse a files-sink job two of whose inputs would be written to the same file."""
    pattern = job.get("input", "glob", kind=str)
    out = job.get("output", "path", kind=str)
    if job.get("output", "type") != "files" or not pattern or not out:
        return
    if job.doc.get("output", {}).get("keep_extension") is True:
        return  # the input's whole name is kept: distinct inputs, distinct files
    content = job.get("output", "content", kind=str) or "text"
    suffix = job.get("output", "suffix", kind=str) or _DEFAULT_SUFFIX.get(content, ".md")
    excludes = [e for e in job.get("input", "exclude", kind=list) or () if isinstance(e, str)]
    try:
        files = find_files(job.path.parent, pattern, excludes)
    except (OSError, ValueError):
        return  # the glob's own check says what is wrong with it
    collisions = _collisions(files, suffix, _literal_prefix(pattern))
    for first, second, target in collisions[:MAX_LISTED]:
        message = (
            f"inputs {first!r} and {second!r} would both be written to "
            f"{out.rstrip('/')}/{target}: set `keep_extension: true` under output to name "
            f"their files {_kept(first, suffix)!r} and {_kept(second, suffix)!r}, or leave "
            "one out with input.exclude"
        )
        yield job.at("$.output.path", message)
    if len(collisions) > MAX_LISTED:
        more = len(collisions) - MAX_LISTED
        yield job.at("$.output.path", f"... and {more} more inputs that share a file")


def _collisions(files: list[str], suffix: str, base: str) -> list[tuple[str, str, str]]:
    """(first input, another input, the file they share) for each input that would land on a
    file an earlier input already takes."""
    taken: dict[str, str] = {}
    found: list[tuple[str, str, str]] = []
    for path in files:
        target = mirrored_name(path, suffix, base)
        if target in taken:
            found.append((taken[target], path, target))
        else:
            taken[target] = path
    return found


def _kept(path: str, suffix: str) -> str:
    return mirrored_name(path.rsplit("/", 1)[-1], suffix, keep_extension=True)


def check_notify(job: RawJob) -> Iterator[Diagnostic]:
    """`notify:` names somewhere to send: a webhook variable, a command, or both."""
    section = job.get("notify", kind=dict)
    if section is not None and not section.get("webhook_env") and not section.get("command"):
        message = (
            "notify sends nowhere: add `webhook_env: NAME` (the environment variable holding "
            "the webhook URL) and/or `command: [...]`"
        )
        yield job.at("$.notify", message)
