"""Resource faults as errors a user can act on: a full disk, a read-only or forbidden
folder, a damaged or vanished state. Each message names the path and the fix, and says
why nothing is lost: state only changes by committed transactions (a failed write rolls
back) and the sink is fed again from state, so the next run goes on from the last step
saved.

Two chokepoints: `sinks.guarded` words a sink's faults, naming the output; `explain`,
called by `cli._guard` for an exception no layer handled, words the rest: the
state folder it names is the one the failing code was working in, read from the
traceback (the innermost state store or spool frame), so that no command has to register
anything for its faults to be explained.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

from runner.errors import BatchrunError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY = frozenset({errno.EROFS})
FORBIDDEN = frozenset({errno.EACCES, errno.EPERM})
WRITE_ERRNOS = NO_SPACE | READ_ONLY | FORBIDDEN
NOTHING_LOST = "nothing is lost: the next run goes on from the last step saved"
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class ResourceError(BatchrunError):
    """The disk, the file system or a permission stopped a write or a read; exit 1."""


def explain(exc: BaseException) -> BatchrunError | None:
    """A clean error for a fault of the job's state, or None if `exc` is not one."""
    if not isinstance(exc, OSError | sqlite3.Error):
        return None
    state, job = _where(exc.__traceback__)
    if state is None:
        return None
    if not state.is_dir():
        blocking = next((p for p in (state, *state.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return ResourceError(
                f"cannot create the state folder {state}: {blocking} is a file, not a folder: "
                "move it, or keep the state elsewhere with --state-dir DIR"
            )
        return state_removed(state, job)
    if isinstance(exc, sqlite3.DatabaseError) and _damaged(exc):
        return damaged_state(state, job, exc)
    if isinstance(exc, sqlite3.Error):
        return sqlite_error(exc, state, "the job's state", "--state-dir DIR")
    where = Path(exc.filename) if exc.filename else state
    if exc.errno in WRITE_ERRNOS:
        return os_error(exc, where, "the job's state", "--state-dir DIR")
    return ResourceError(
        f"cannot use the job's state at {where}: {exc.strerror or exc}: fix that path, or keep "
        f"the state elsewhere with --state-dir DIR; {NOTHING_LOST}"
    )


def _where(tb: TracebackType | None) -> tuple[Path | None, Path | None]:
    """(the state folder, the job file) of the innermost frames that name them."""
    state: Path | None = None
    job: Path | None = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        found = _state_of(module, tb.tb_frame.f_locals)
        state = found or state
        job = _job_of(tb.tb_frame.f_locals) or job
        tb = tb.tb_next
    return state, job


def _state_of(module: str, names: dict[str, Any]) -> Path | None:
    own = names.get("self")
    if module.startswith("runner.store"):
        found = getattr(own, "state_dir", None) or names.get("state_dir")
        return found if isinstance(found, Path) else None
    spooled = getattr(own, "path", None)
    if module == "runner.executor.spool" and isinstance(spooled, Path):
        return spooled.parent
    return None


def _job_of(names: dict[str, Any]) -> Path | None:
    for holder in (names.get("job"), getattr(names.get("ctx"), "job", None)):
        path = getattr(holder, "path", None)
        if isinstance(path, Path) and path.suffix in (".yaml", ".yml"):
            return path
    return None


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    return name.startswith(_DAMAGED) or "malformed" in text or "not a database" in text


def _recover(job: Path | None) -> str:
    return f"`batchrun recover {job}`" if job else "`batchrun recover JOB`"


def state_removed(state: Path, job: Path | None) -> ResourceError:
    """The state folder vanished under a live command: how to go on without paying twice."""
    return ResourceError(
        f"the state folder {state} was removed while the command ran, so it stopped. Run "
        f"{_recover(job)} first: it rebuilds the state from the API, finding this job's "
        "batches by their custom_ids (so nothing is billed twice); then run again"
    )


def damaged_state(state: Path, job: Path | None, exc: BaseException) -> ResourceError:
    """The state database cannot be read: how to move it aside and rebuild it."""
    return ResourceError(
        f"the state database {state / 'state.db'} is damaged ({exc}): move the state folder "
        f"aside (mv {state} {state}.damaged), then run {_recover(job)} to rebuild it from "
        "the API"
    )


def sqlite_error(exc: sqlite3.Error, where: Path, what: str, fix: str) -> ResourceError:
    """A write SQLite refused, in the words of the matching file-system fault."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    code = (
        errno.ENOSPC if name.startswith("SQLITE_FULL")
        else errno.EROFS if name.startswith("SQLITE_READONLY")
        else errno.EACCES if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"))
        else None
    )  # fmt: skip
    if code is None:
        return ResourceError(f"cannot use {what} in {where}: {exc}; {NOTHING_LOST}")
    return os_error(OSError(code, str(exc)), where, what, fix)


def os_error(exc: OSError, where: Path, what: str, fix: str) -> ResourceError:
    """ENOSPC, EROFS or EACCES at `where` while writing `what`: the fix, and that nothing is
    lost."""
    if exc.errno in NO_SPACE:
        problem = f"no space left on the device holding {where} ({what})"
        todo = f"free some space, or write elsewhere ({fix})"
    elif exc.errno in READ_ONLY:
        problem = f"{where} ({what}) is on a read-only file system"
        todo = f"mount it writable, or write elsewhere ({fix})"
    else:
        problem = f"permission denied writing {where} ({what})"
        todo = f"give this user write access to it, or write elsewhere ({fix})"
    return ResourceError(f"{problem}: {todo}, then run again; {NOTHING_LOST}")
