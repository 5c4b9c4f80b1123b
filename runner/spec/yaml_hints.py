"""YAML indentation mistakes explained: PyYAML's parser text ("mapping values are not allowed
here", "expected <block end>") says what the parser saw, not what the user did. Each hint
names the offending line, the line above it and the indentation to use instead. A mistake
YAML itself accepts (a section's key that lost its indentation and became a top-level key)
shows up as an unknown key: `misplaced_key` says so instead of suggesting a look-alike."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from runner.spec.schema import schema

_KEY = re.compile(r"^(\s*)(-\s+)?([^\s#'\"][^:#]*?|'[^']*'|\"[^\"]*\"):(\s|$)")


def explain(exc: yaml.MarkedYAMLError, text: str) -> str | None:
    """A message for an indentation mistake behind `exc`, or None when it is something else."""
    mark = exc.problem_mark
    if mark is None:
        return None
    lines = text.splitlines()
    if mark.line >= len(lines):
        return None
    problem = exc.problem or ""
    if problem == "mapping values are not allowed here":
        return _mapping_value(lines, mark.line, mark.column)
    if problem.startswith("expected <block end>, but found"):
        return _lines_up_with_nothing(lines, mark.line)
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _above(lines: list[str], index: int) -> int | None:
    """The index of the nearest line above `index` that holds YAML (not blank, not a comment)."""
    for i in range(index - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            return i
    return None


def _show(line: str) -> str:
    text = line.strip()
    return f"`{text if len(text) <= 40 else text[:37] + '...'}`"


def _spaces(n: int) -> str:
    return f"{n} space{'s' * (n != 1)}"


def _mapping_value(lines: list[str], index: int, col: int) -> str | None:
    line = lines[index]
    before = line[:col]
    if _KEY.match(before) and ": " in before.strip() + " ":
        key = _KEY.match(before)
        assert key is not None
        if key.end() <= col:
            return (
                f"YAML: the value of `{key.group(3).strip()}:` on line {index + 1} holds ': ', "
                "which YAML reads as a second key: put the whole value in quotes"
            )
    above = _above(lines, index)
    if above is None or _indent(line) <= _indent(lines[above]):
        return None
    return (
        f"YAML indentation: line {index + 1} ({_show(line)}) is indented deeper than line "
        f"{above + 1} above it ({_show(lines[above])}), which already has a value, so YAML "
        f"reads line {index + 1} as more of that value: indent it by "
        f"{_spaces(_indent(lines[above]))} like line {above + 1}, or, if it belongs under "
        f"that key, leave the key's value empty (`{_key_of(lines[above])}:`)"
    )


def _key_of(line: str) -> str:
    found = _KEY.match(line)
    return found.group(3).strip() if found else line.strip()


def _lines_up_with_nothing(lines: list[str], index: int) -> str | None:
    line = lines[index]
    above = _above(lines, index)
    if above is None:
        return None
    levels = _open_levels(lines, index)
    if _indent(line) in levels:
        return None
    options = " or ".join(_spaces(n) for n in sorted(levels, reverse=True)[:2])
    return (
        f"YAML indentation: line {index + 1} ({_show(line)}) is indented by "
        f"{_spaces(_indent(line))}, which lines up with no key above it (line {above + 1}, "
        f"{_show(lines[above])}, is at {_spaces(_indent(lines[above]))}): indent it by "
        f"{options}, like the key it belongs with"
    )


def _open_levels(lines: list[str], index: int) -> set[int]:
    """The indentations of the mappings still open at line `index`: those of the lines above,
    each shallower than the one below it."""
    levels: set[int] = set()
    deepest = None
    for i in range(index - 1, -1, -1):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            continue
        n = _indent(lines[i])
        if deepest is None or n < deepest:
            levels.add(n)
            deepest = n
        if n == 0:
            break
    return levels


def misplaced_key(key: str, path: str, key_positions: Mapping[str, tuple[int, int]]) -> str | None:
    """Why an unknown key is really a known key at the wrong indentation, or None.

    A key written at the top level that belongs to the section just above it (`path:` under
    `output:` lost its indentation), or a top-level key indented into a section.
    """
    top = schema()["properties"]
    if path == "$":
        section = _section_above(key, key_positions)
        if section is not None and key in _keys_of(top[section]):
            line = key_positions[f"$.{section}"][0]
            return (
                f"{key!r} is not a top-level key: it belongs under `{section}:` (line {line}) "
                f"above it: indent it like the other keys of {section}"
            )
        return None
    section = path.removeprefix("$.")
    if section in top and key in top and key not in _keys_of(top[section]):
        line = key_positions.get(f"$.{section}", (0, 0))[0]
        return (
            f"{key!r} is a top-level key, not part of {section}: remove its indentation "
            f"(start it at the left margin, like `{section}:` on line {line})"
        )
    return None


def _section_above(key: str, key_positions: Mapping[str, tuple[int, int]]) -> str | None:
    """The top-level key written last before `key`, if any."""
    line = key_positions.get(f"$.{key}", (0, 0))[0]
    tops = [
        (where[0], p.removeprefix("$."))
        for p, where in key_positions.items()
        if p.count(".") == 1 and "[" not in p and where[0] < line
    ]
    return max(tops)[1] if tops else None


def _keys_of(node: Mapping[str, Any]) -> set[str]:
    """The keys a schema node's mapping may hold, through `$ref` and the output branches."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node = schema()["$defs"][ref.removeprefix("#/$defs/")]
    keys = set(node.get("properties", {}))
    for branch in node.get("allOf", []):
        keys |= set(branch.get("then", {}).get("properties", {}))
    return keys


def section_as_string(path: str, value: Any) -> str:
    """The form a section written as one string most likely meant (`input: data/*.txt`,
    `output: out/x.jsonl`), or "" for anything else."""
    if not isinstance(value, str) or path not in ("$.input", "$.output"):
        return ""
    if path == "$.input":
        kind = "jsonl" if value.endswith(".jsonl") else "csv" if value.endswith(".csv") else "glob"
        return f": write `input: {{{kind}: {value}}}`"
    sink = "jsonl" if value.endswith(".jsonl") else "sqlite" if value.endswith(".db") else "files"
    return f": write `output: {{type: {sink}, path: {value}}}`"
