"""Line-aware safe YAML: the document, where each node, key and text starts, and the
problems PyYAML would hide (duplicate keys, non-string keys).

Safe loading only; dates stay strings (STYLE: YAML hygiene).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from runner.errors import Diagnostic
from runner.spec import yaml_hints


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings (STYLE: YAML hygiene)."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

Positions = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class TextStart:
    """Where a scalar's text starts: for a literal block (`|`) the line after its header."""

    line: int
    col: int
    exact: bool  # each line of the value is one line of the file (literal blocks)


TextStarts = dict[str, TextStart]


def json_path(parent: str, key: str | int) -> str:
    """`$.a.b[0]`; keys that are not plain identifiers as `$['a b']`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{parent}.{key}"
    return f"{parent}[{key!r}]"


@dataclass
class LoadedYaml:
    """The document, the (line, col) of each node by JSON path, and problems found."""

    data: Any
    positions: Positions
    diagnostics: list[Diagnostic]
    key_positions: Positions = field(default_factory=dict)  # of each mapping key, by its path
    text_starts: TextStarts = field(default_factory=dict)  # of each string scalar


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse `text` safely, recording positions and rejecting duplicate or non-string keys."""
    loader = _Loader(text)
    result = LoadedYaml(None, {}, [])
    try:
        node = loader.get_single_node()
        if node is None:
            return result
        _Walker(file, text.splitlines(), result).walk(node, "$")
        result.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        result.data = None
        # A refused tag is found after the walk: name the node it sits on.
        at = [p for p, where in result.positions.items() if where == (line, col)]
        path = at[-1] if at else "$"
        message = yaml_hints.explain(exc, text) or yaml_error_message(exc)
        result.diagnostics.append(Diagnostic(file, line, col, path, message))
    finally:
        loader.dispose()
    return result


def yaml_error_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's own words, plus the fix for the mistakes new users make most."""
    problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        found = re.search(r"tag '([^']*)'", problem)
        tag = found.group(1) if found else "?"
        tag = tag.replace("tag:yaml.org,2002:", "!!", 1)
        return (
            f"YAML tag {tag} is not allowed: a job file holds plain data only "
            "(strings, numbers, booleans, lists, mappings)"
        )
    if "'\\t'" in problem:
        return "YAML syntax error: a tab character where YAML allows none: indent with spaces"
    return f"YAML syntax error: {problem}"


class _Walker:
    """Records node, key and text positions, and the key problems PyYAML would hide."""

    def __init__(self, file: str, lines: list[str], out: LoadedYaml) -> None:
        self.file, self.lines, self.out = file, lines, out

    def walk(self, node: yaml.Node, path: str) -> None:
        self.out.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self._mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, json_path(path, i))
        elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            self.out.text_starts[path] = self._text_start(node)

    def _mapping(self, node: yaml.MappingNode, path: str) -> None:
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` is plain YAML
                self.walk(value_node, path)
                continue
            if _word_key(key_node):
                # `on:` (notify's events) is a key, as YAML 1.2 and every reader sees it;
                # YAML 1.1 would make it the boolean true.
                key_node.tag = "tag:yaml.org,2002:str"
            if key_node.tag != "tag:yaml.org,2002:str":
                msg = f"key {key_node.value!r} must be a string: quote it"
                self.out.diagnostics.append(Diagnostic(self.file, *where, path, msg))
                continue
            key = str(key_node.value)
            child = json_path(path, key)
            if key in seen:
                first = seen[key].start_mark.line + 1
                msg = f"duplicate key {key!r} (first defined on line {first}): keep only one"
                self.out.diagnostics.append(Diagnostic(self.file, *where, child, msg))
            seen[key] = key_node
            self.out.key_positions[child] = where
            self.walk(value_node, child)

    def _text_start(self, node: yaml.ScalarNode) -> TextStart:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        if node.style != "|":
            return TextStart(line, col, exact=False)
        # A literal block's text starts on the line after its `|` header, at its indentation.
        for number in range(line + 1, node.end_mark.line + 2):
            text = self.lines[number - 1] if number <= len(self.lines) else ""
            if text.strip():
                return TextStart(line + 1, len(text) - len(text.lstrip(" ")) + 1, exact=True)
        return TextStart(line + 1, 1, exact=True)


def _word_key(node: yaml.Node) -> bool:
    """A plain `on`/`off`/`yes`/`no` key, which YAML 1.1 alone reads as a boolean."""
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:bool"
        and node.style is None
        and node.value.lower() in ("on", "off", "yes", "no")
    )
