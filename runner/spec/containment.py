"""Where a job may read and write: inside its project root.

The project root is the git repository holding the job file (the nearest folder above it
with a `.git`), or the job file's own folder when it is in none; an operator can name it
with BATCHRUN_PROJECT_ROOT (a container image without `.git`). Every path a job names
(inputs, prompt and system files, outputs) and its state folder must resolve, symlinks
followed, inside that root: a job file from a pull request must not send `/etc/passwd`
to the API through `docs/x.txt -> /etc/passwd`, nor write over `~/.ssh`. An input or an
output that really lives elsewhere says so with `allow_outside: true`.
"""

from __future__ import annotations

import functools
import itertools
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic
from runner.globs import _literal_prefix, glob_regex

At = Callable[[str, str], Diagnostic]  # (JSON path, message) -> a finding placed there

MAX_NAMED = 10  # input files named one by one in a finding; the others are counted

# (keys in the document, the section whose `allow_outside` opts out, the fix to suggest)
_NAMED: tuple[tuple[tuple[str, ...], str | None, str], ...] = (
    (("input", "jsonl"), "input", "read"),
    (("input", "csv"), "input", "read"),
    (("output", "path"), "output", "write"),
    (("prompt_file",), None, "read"),
    (("system", "file"), None, "read"),
    (("output_schema",), None, "read"),
)


ROOT_ENV = "BATCHRUN_PROJECT_ROOT"


def project_root(job_folder: Path) -> Path:
    """BATCHRUN_PROJECT_ROOT if set, else the git repository holding `job_folder`, else
    `job_folder` itself (resolved)."""
    named = os.environ.get(ROOT_ENV)
    return Path(named).resolve() if named else _found_root(job_folder)


@functools.lru_cache(maxsize=256)
def _found_root(job_folder: Path) -> Path:
    folder = job_folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def root_words(root: Path) -> str:
    """The root and how it was chosen, for messages."""
    if os.environ.get(ROOT_ENV):
        return f"the project root {root} ({ROOT_ENV})"
    if (root / ".git").exists():
        return f"the project root {root} (the git repository holding the job file)"
    return (
        f"the project root {root} (the job file's folder, which is in no git repository; "
        f"set {ROOT_ENV} to name another)"
    )


def escape(root: Path, base: Path, relative: str) -> str | None:
    """Why `base/relative` leaves `root`, or None when it stays inside. Resolved with every
    symlink followed; a path that does not exist yet, as far as it exists."""
    lexical = Path(posixpath.normpath(base / relative))
    target = Path(os.path.realpath(lexical))
    if _inside(root, target):
        if ".git" in target.relative_to(root).parts:
            return (
                f"{relative} is inside .git/, the repository's own folder (a checkout may "
                "keep credentials there), outside what a job may use"
            )
        return None
    if _inside(root, lexical):
        return f"{relative} is a symlink to {target}, outside {root_words(root)}"
    return f"{relative} is outside {root_words(root)}"


def is_inside(job_path: Path, relative: str) -> bool:
    """Whether a path the job names resolves inside its project root (read it only then)."""
    root = project_root(job_path.parent)
    return escape(root, job_path.parent, relative) is None


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def state_escape(job_path: Path, state_dir: Path) -> str | None:
    """Why a state folder beside a job leaves its root (`.batchrun` symlinked away)."""
    root = project_root(job_path.parent)
    target = Path(os.path.realpath(state_dir))
    if _inside(root, target):
        return None
    return (
        f"the state folder {state_dir} resolves to {target}, outside {root_words(root)}: "
        "remove the symlink, or keep the state elsewhere on purpose with --state-dir"
    )


def check(job_path: Path, doc: Mapping[str, Any], at: At) -> Iterator[Diagnostic]:
    """A finding for each path of the job file `job_path` (a possibly invalid document)
    that leaves its project root."""
    root = project_root(job_path.parent)
    for keys, section, verb in _NAMED:
        relative = _get(doc, keys)
        if not relative or "://" in relative:  # an object-storage URL is not a local path
            continue
        if section is not None and _allowed(doc, section):
            continue
        why = escape(root, job_path.parent, relative)
        if why is not None:
            yield at("$." + ".".join(keys), f"{why}: {_fix(section, verb)}")
    yield from _glob(job_path, doc, at, root)
    yield from _output_shape(job_path, doc, at)
    state = job_path.parent / ".batchrun"
    if isinstance(doc.get("name"), str) and state.exists():
        why = state_escape(job_path, state)
        if why is not None:
            yield at("$.name", why)


def _output_shape(job_path: Path, doc: Mapping[str, Any], at: At) -> Iterator[Diagnostic]:
    """The output can be what its type writes: a file for jsonl and sqlite, a folder for
    files, with no file where a folder of its path must be."""
    relative, kind = _get(doc, ("output", "path")), _get(doc, ("output", "type"))
    if not relative or "://" in relative or kind not in ("jsonl", "files", "sqlite"):
        return
    target = job_path.parent / relative
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        message = f"{blocking} is a file where the output's folder must be: move it"
        yield at("$.output.path", message)
    elif kind != "files" and target.is_dir():
        yield at("$.output.path", f"{relative} is a folder: a {kind} output is one file")
    elif kind == "files" and target.exists() and not target.is_dir():
        yield at("$.output.path", f"{relative} is a file: a files output is a folder")


def _get(doc: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    value: Any = doc
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else None


def _allowed(doc: Mapping[str, Any], section: str) -> bool:
    part = doc.get(section)
    return isinstance(part, Mapping) and part.get("allow_outside") is True


def _fix(section: str | None, verb: str) -> str:
    if section is None:
        return "move the file inside the project"
    return (
        f"move it inside the project, or set {section}.allow_outside: true if the job must "
        f"{verb} it there"
    )


MAX_STARS_PER_PART = 2  # `*` in one folder or file name part of a glob
MAX_DOUBLE_STARS = 3  # `**` in one glob


def glob_problem(pattern: str) -> str | None:
    """Why matching `pattern` could take unbounded time, or None. Globs become regular
    expressions, and `*a*a*a*b` or `**/**/**/x` backtrack exponentially (or to a high
    power) on names an attacker picks: a pull request adds both the job and the files."""
    parts = pattern.split("/")
    if any(a == b == "**" for a, b in itertools.pairwise(parts)):
        return "`**/**` matches no more than `**`: write it once"
    if sum(p.count("**") for p in parts) > MAX_DOUBLE_STARS:
        return f"more than {MAX_DOUBLE_STARS} `**` in one glob: simplify it"
    if any(p.replace("**", "").count("*") > MAX_STARS_PER_PART for p in parts):
        return (
            f"more than {MAX_STARS_PER_PART} `*` in one part of the glob: matching it could take "
            "very long on some file names: simplify it"
        )
    return None


def slow_globs(pattern: str, excludes: list[str]) -> list[tuple[str, str]]:
    """(JSON path, why) for the input glob and each exclude pattern that `glob_problem`
    refuses."""
    named = [("$.input.glob", pattern)] + [
        (f"$.input.exclude[{i}]", e) for i, e in enumerate(excludes)
    ]
    return [(path, why) for path, glob in named if (why := glob_problem(glob)) is not None]


def _glob(job_path: Path, doc: Mapping[str, Any], at: At, root: Path) -> Iterator[Diagnostic]:
    pattern = _get(doc, ("input", "glob"))
    if not pattern or Path(pattern).is_absolute() or _allowed(doc, "input"):
        return
    exclude = _get_list(doc.get("input"), "exclude")
    excludes = [e for e in exclude if isinstance(e, str)]
    if slow_globs(pattern, excludes):
        return  # reported by the glob check, which also never walks it
    base = job_path.parent
    prefix = _literal_prefix(pattern) or "."  # the folder the walk starts in
    why = escape(root, base, prefix)
    if why is not None:  # the whole walk would be outside: say it once
        yield at("$.input.glob", f"the glob's folder {why}: {_fix('input', 'read')}")
        return
    include, skip = glob_regex(pattern), [glob_regex(e) for e in excludes]
    leaving = [
        (why, link)
        for rel, link in _suspects(str(base), prefix)
        if include.match(rel) and not any(x.match(rel) for x in skip)
        and (why := escape(root, base, rel)) is not None
    ]  # fmt: skip
    for why, link in leaving[:MAX_NAMED]:
        fix = "leave it out with input.exclude, or set input.allow_outside: true"
        yield at("$.input.glob", f"the input {why}: {'remove the link, ' if link else ''}{fix}")
    if len(leaving) > MAX_NAMED:
        yield at("$.input.glob", f"... and {len(leaving) - MAX_NAMED} more such inputs")


def _suspects(base: str, prefix: str) -> Iterator[tuple[str, bool]]:
    """(path relative to `base`, is it a symlink) of what below `base/prefix` could lead
    out of what a job may read: symlinks, and everything inside a `.git` folder. The glob's
    walk follows no symlinked folder, so nothing else can. One scandir walk, no call per
    file: on 20,000 inputs an lstat each cost more than the glob's own walk."""
    stack = [(prefix if prefix != "." else "", False)]
    while stack:
        folder, in_git = stack.pop()
        try:
            entries = os.scandir(os.path.join(base, folder) if folder else base)  # noqa: PTH118
        except OSError:
            continue
        with entries:
            for entry in entries:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                if entry.is_symlink():
                    if not entry.is_dir():  # a linked folder is not walked: not an input
                        yield rel, True
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((rel, in_git or entry.name == ".git"))
                elif in_git:
                    yield rel, False


def _get_list(section: Any, key: str) -> list[Any]:
    value = section.get(key) if isinstance(section, Mapping) else None
    return value if isinstance(value, list) else []
