"""The one glob implementation, over POSIX paths relative to a job's folder: used by the
inputs, by validation (so its warnings match the run) and by the input index."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob over POSIX relative paths: `*` and `?` stay within one folder,
    `**/` matches any number of folders (including none), `[...]` is a character class."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body[:1] in "!^" else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _literal_prefix(pattern: str) -> str:
    """The folders before the first wildcard: the only part of the tree worth walking."""
    parts = pattern.split("/")[:-1]
    prefix: list[str] = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        prefix.append(part)
    return "/".join(prefix)


def find_files(base: Path, pattern: str, exclude: Sequence[str] = ()) -> list[str]:
    """Relative POSIX paths under `base` matching `pattern` and no `exclude` pattern, sorted.
    The one glob implementation: validation asks it too, so its warnings match the run."""
    include = glob_regex(pattern)
    excludes = [glob_regex(p) for p in exclude]
    prefix = _literal_prefix(pattern)
    root = base / prefix
    # Without `**`, nothing deeper than the pattern's own depth can match: do not walk it.
    prefix_depth = prefix.count("/") + 1 if prefix else 0
    max_depth = None if "**" in pattern else pattern.count("/") - prefix_depth
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        depth = 0 if rel_folder == "." else rel_folder.count("/") + 1
        if max_depth is not None and depth >= max_depth:
            dirs.clear()
        for name in files:
            rel = posixpath.normpath(posixpath.join(prefix, rel_folder, name))
            if include.match(rel) and not any(x.match(rel) for x in excludes):
                found.append(rel)
    return sorted(found)


def mirrored_name(
    input_path: str, suffix: str, base: str = "", keep_extension: bool = False
) -> str:
    """Where a glob input's answer goes below `output.path`: its path below `base` (the
    glob's fixed base), the extension replaced by `suffix` (or kept, `suffix` appended)."""
    if base and input_path.startswith(base + "/"):
        input_path = input_path[len(base) + 1 :]
    if keep_extension:
        return input_path + suffix
    folder, _, leaf = input_path.rpartition("/")
    stem = PurePosixPath(leaf).stem if leaf not in ("", ".", "..") else leaf
    return f"{folder}/{stem}{suffix}" if folder else stem + suffix
