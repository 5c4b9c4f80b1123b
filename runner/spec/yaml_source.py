"""Line-aware safe YAML: the document, where each node, key and text starts, and the
problems PyYAML would hide (duplicate keys, non-string keys).

Safe loading only; dates stay strings (STYLE: YAML hygiene). Bounded: `validate` reads job
files from pull requests, so a document is refused while it is composed, before anything
expands an alias, when its aliases expand past MAX_NODES values (a 1 KB "billion laughs"
would otherwise take minutes and gigabytes), when an alias sits inside its own anchor, when
it nests past MAX_DEPTH, or when an integer has more than MAX_INT_DIGITS digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from runner.errors import Diagnostic
from runner.spec import yaml_hints

# A job file is small: these bounds are far above any real one and far below what would
# take a noticeable time or memory to check (validate reads untrusted pull requests).
MAX_NODES = 20_000  # values of the document, every alias expanded: real jobs have hundreds
MAX_DEPTH = 64  # nesting of mappings and sequences
MAX_INT_DIGITS = 100  # longer integers are refused (Python refuses 4,300 digits anyway)
_INT_TAG = "tag:yaml.org,2002:int"


class BoundError(yaml.MarkedYAMLError):
    """The document passes a bound (aliases, depth, a scalar's size): refused, not read."""

    def __init__(self, message: str, mark: Any, path: str) -> None:
        super().__init__(None, None, message, mark)
        self.path = path


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings (STYLE: YAML hygiene) and refuses documents
    past the bounds above while composing them, before anything expands an alias."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> its node count, aliases expanded
        self._total = 0  # nodes composed so far, aliases expanded
        self._path = ["$"]  # JSON path of the node being composed, for messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._path.append(_step(self._path[-1], index))
        try:
            return self._compose(parent, index)
        finally:
            self._path.pop()

    def _compose(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._alias(event)
            return self._composed(parent, index)
        if len(self._path) > MAX_DEPTH + 1:
            message = f"nested more than {MAX_DEPTH} levels deep: a job file needs far fewer"
            raise BoundError(message, event.start_mark, self._path[-1])
        self._total += 1
        if self._total > MAX_NODES:
            message = f"more than {MAX_NODES:,} values: a job file needs far fewer"
            raise BoundError(message, event.start_mark, self._path[-1])
        before = self._total - 1
        node = self._composed(parent, index)
        self._sizes[id(node)] = self._total - before
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT_TAG:
            _check_int(node, self._path[-1])
        return node

    def _composed(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        node = super().compose_node(parent, index)
        assert node is not None  # only the end of a stream composes to None
        return node

    def _alias(self, event: Any) -> None:
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # PyYAML reports the undefined alias itself
        size = self._sizes.get(id(target))
        if size is None:  # still being composed: the alias is inside its own anchor
            message = (
                f"the alias *{event.anchor} is inside the node it refers to (a recursive "
                "alias): a job file cannot hold a structure that contains itself"
            )
            raise BoundError(message, event.start_mark, self._path[-1])
        self._total += size
        if self._total > MAX_NODES:
            message = (
                f"the aliases expand the document past {MAX_NODES:,} values (at this alias "
                f"*{event.anchor}, of {size:,} values): write the values out, or use fewer "
                "nested aliases"
            )
            raise BoundError(message, event.start_mark, self._path[-1])


def _step(parent: str, index: Any) -> str:
    """The JSON path of a child: a sequence item (int), a mapping value (its key node), or
    a mapping key (None: placed at its mapping)."""
    if isinstance(index, int):
        return json_path(parent, index)
    if isinstance(index, yaml.ScalarNode):
        return json_path(parent, str(index.value))
    return parent


def _check_int(node: yaml.ScalarNode, path: str) -> None:
    digits = sum(ch.isdigit() for ch in node.value)
    if digits > MAX_INT_DIGITS:
        message = (
            f"an integer of {digits:,} digits: at most {MAX_INT_DIGITS} are allowed; "
            "quote it if it is text"
        )
        raise BoundError(message, node.start_mark, path)


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
    result = LoadedYaml(None, {}, [])
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a control character: found before parsing
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = (
            f"the character U+{exc.character:04X} is not allowed in YAML: remove it "
            "(a job file is plain text)"
        )
        result.diagnostics.append(Diagnostic(file, line, col, "$", message))
        return result
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
        path = exc.path if isinstance(exc, BoundError) else at[-1] if at else "$"
        message = yaml_hints.explain(exc, text) or yaml_error_message(exc)
        result.diagnostics.append(Diagnostic(file, line, col, path, message))
    finally:
        loader.dispose()
    return result


def yaml_error_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's own words, plus the fix for the mistakes new users make most."""
    problem = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
    if isinstance(exc, BoundError):
        return problem
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
