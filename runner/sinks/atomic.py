"""Crash-safe file replacement relative to an open folder: temp file + fsync + rename.

Everything here works on a folder file descriptor (`dir_fd`) rather than on path strings, so
a name is always resolved inside the folder the caller vetted: a symlink swapped in
somewhere up the path after the check cannot redirect a write.

A crash can leave a temp file behind. A temp name is `.<name>.<16 hex>.batchrun-tmp`, so
`remove_temps` can clear them on the next open without touching results (sinks refuse to
write a result under a name of that shape).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

TEMP_NAME = re.compile(r"^\..*\.[0-9a-f]{16}\.batchrun-tmp$", re.DOTALL)
_TEMP_STEM = 100  # characters of the final name kept in its temp name: stays under NAME_MAX

# O_NOFOLLOW makes opening a symlink fail (ELOOP) instead of following it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def temp_name(name: str) -> str:
    """A fresh temp name for `name`; random so two writers never share one."""
    return f".{name[:_TEMP_STEM]}.{secrets.token_hex(8)}.batchrun-tmp"


def is_temp_of(temp: str, name: str) -> bool:
    """Whether `temp` is a temp file left by a writer of `name`."""
    own = re.compile(rf"^\.{re.escape(name[:_TEMP_STEM])}\.[0-9a-f]{{16}}\.batchrun-tmp$")
    return own.match(temp) is not None


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry `name` itself (a symlink is not followed), or None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)


def read_bytes(dir_fd: int, name: str) -> bytes:
    """The bytes of `name`; refuses (ELOOP) to follow a symlink swapped in since `lstat`."""
    with os.fdopen(os.open(name, _READ_FLAGS, dir_fd=dir_fd), "rb") as f:
        return f.read()


def write_atomic(dir_fd: int, name: str, data: bytes) -> None:
    """Replace `name` in the folder `dir_fd` with `data`, all or nothing.

    The temp file is fsynced before the rename, so after a crash `name` holds either the
    old bytes or the new ones, never a torn mix. The folder entry itself is made durable by
    the caller (`fsync_dir`), once per folder rather than once per file.
    """
    tmp = temp_name(name)
    fd = os.open(tmp, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        unlink(dir_fd, tmp)
        raise


def unlink(dir_fd: int, name: str) -> bool:
    """Remove `name` from the folder; False when it was not there."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def fsync_dir(dir_fd: int) -> None:
    """Make the folder's entries (renames, new files) durable."""
    os.fsync(dir_fd)


def remove_temps_of(folder: Path, name: str) -> int:
    """Delete the temp files a crashed writer of `folder/name` left; return how many.

    Only that name's temps: the folder may be shared with other jobs' outputs.
    """
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_temp_of(entry.name, name):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def remove_temps(root: Path) -> int:
    """Delete temp files a crashed writer left anywhere under `root`; return how many.

    Symlinked folders are not followed, so this never deletes outside `root`.
    """
    removed = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if TEMP_NAME.match(name):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed
