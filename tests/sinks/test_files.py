"""runner.sinks.files: one file per input, exactly once, never outside output.path."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import BatchrunError
from runner.records import DeadLetter, ResultRecord
from runner.sinks import SinkRecordError, SinkRecordErrors
from runner.sinks.files import FilesSink, key_filename, parse_json_answer, render
from runner.spec.model import FileContent, OutputSpec
from tests.conftest import REPO


def rec(
    key: str = "a", path: str | None = None, text: str = "hello", cid: str = "c1"
) -> ResultRecord:
    message = {"id": "msg_1", "content": [{"type": "text", "text": text}], "role": "assistant"}
    return ResultRecord(
        input_key=key,
        input_path=path,
        custom_id=cid,
        text=text,
        message=message,
        usage={"input_tokens": 3, "output_tokens": 5},
        cost_usd=0.001,
        batch_id="msgbatch_1",
        model="claude-sonnet-4-6",
        spec_hash="h",
        attempts=1,
        collected_at="2026-11-24T06:00:00Z",
    )


def dead(key: str = "a", path: str | None = None) -> DeadLetter:
    return DeadLetter(key, path, "c0", "errored", "invalid_request_error", "bad", 1, "b", "h", "t")


def output(tmp_path: Path, content: FileContent = "text", suffix: str | None = None) -> OutputSpec:
    """keep_extension: these tests are about writing safely, and `x.txt.md` names their
    files plainly (the naming rules have tests of their own)."""
    return OutputSpec(
        type="files", path=tmp_path / "out", suffix=suffix, content=content, keep_extension=True
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[FilesSink]:
    s = FilesSink(output(tmp_path))
    yield s
    s.close()


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under root (not following symlinks), by relative path."""
    found = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            p = Path(folder, name)
            if not p.is_symlink():
                found[str(p.relative_to(root))] = p.read_bytes()
    return found


def inode(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# ---------------------------------------------------------------------------------------
# Layout


@pytest.mark.parametrize(
    ("base", "keep", "paths", "expected"),
    [
        # glob: data/notes/**/*.txt -> the tree below data/notes, .txt replaced by .md
        ("data/notes", False, ["data/notes/note-1.txt", "data/notes/sub/note-2.txt"],
         {"note-1.md": b"0", "sub/note-2.md": b"1"}),
        # no fixed base (glob: *.txt): the whole relative path
        ("", False, ["a.txt", "x/b.tar.gz"], {"a.md": b"0", "x/b.tar.md": b"1"}),
        # keep_extension: the suffix is appended to the whole name
        ("docs", True, ["docs/a.txt", "docs/a.csv"], {"a.txt.md": b"0", "a.csv.md": b"1"}),
        # a file without an extension gets the suffix
        ("data", False, ["data/README"], {"README.md": b"0"}),
    ],
)  # fmt: skip
def test_glob_input_mirrors_the_tree_below_the_glob_base(
    tmp_path: Path, base: str, keep: bool, paths: list[str], expected: dict[str, bytes]
) -> None:
    """The answer of a glob input lands at its path below the glob's fixed base, the suffix
    replacing its extension (or appended with keep_extension)."""
    spec = OutputSpec(type="files", path=tmp_path / "out", keep_extension=keep, input_base=base)
    s = FilesSink(spec)
    s.upsert([rec(f"k{i}", p, str(i)) for i, p in enumerate(paths)])
    s.close()
    assert tree(tmp_path / "out") == expected


def test_a_dead_letter_removes_the_mirrored_answer(tmp_path: Path) -> None:
    spec = OutputSpec(type="files", path=tmp_path / "out", input_base="data")
    s = FilesSink(spec)
    s.upsert([rec("data/a.txt", "data/a.txt", "A")])
    assert tree(tmp_path / "out") == {"a.md": b"A"}
    s.upsert_dead([dead("data/a.txt", "data/a.txt")])
    s.close()
    assert tree(tmp_path / "out") == {}


def test_record_input_uses_a_filename_from_its_key(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert([rec("row-1", None, "one"), rec("Row 2/x", None, "two")])
    files = tree(tmp_path / "out")
    assert files["row-1.md"] == b"one"
    assert files[key_filename("Row 2/x") + ".md"] == b"two"
    assert len(files) == 2


@pytest.mark.parametrize(
    ("key", "name"),
    [("row-1", "row-1"), ("a.b_c", "a.b_c"), ("42", "42")],
)
def test_safe_keys_are_used_as_they_are(key: str, name: str) -> None:
    assert key_filename(key) == name


@pytest.mark.parametrize("key", ["A", "a b", "../x", ".", "..", "", "con", "-rf", "a/b", "é"])
def test_other_keys_get_a_sanitised_name_and_a_hash(key: str) -> None:
    name = key_filename(key)
    assert "~" in name and "/" not in name and not name.startswith((".", "-"))


@given(st.lists(st.text(max_size=30), min_size=2, max_size=8, unique=True))
def test_distinct_keys_never_share_a_file_even_case_insensitively(keys: list[str]) -> None:
    names = [key_filename(k).casefold() for k in keys]
    assert len(set(names)) == len(keys)


@pytest.mark.parametrize(
    ("content", "suffix", "name"),
    [("text", None, "k.md"), ("json", None, "k.json"), ("message", None, "k.json"),
     ("text", ".txt", "k.txt")],
)  # fmt: skip
def test_suffix_defaults_by_content(
    tmp_path: Path, content: FileContent, suffix: str | None, name: str
) -> None:
    s = FilesSink(output(tmp_path, content, suffix))
    s.upsert([rec("k", None, '{"x": 1}')])
    s.close()
    assert list(tree(tmp_path / "out")) == [name]


# ---------------------------------------------------------------------------------------
# Content


def test_json_content_is_the_parsed_answer_pretty_printed(tmp_path: Path) -> None:
    s = FilesSink(output(tmp_path, "json"))
    s.upsert([rec("k", None, '{"b": 1, "a": [1, 2]}')])
    s.close()
    assert (
        tmp_path / "out/k.json"
    ).read_bytes() == b'{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"a": 1}\n```',
        '  ```\n{"a": 1}\n```\n',
        '```JSON\r\n{"a": 1}\r\n```',
        '\n{"a": 1}\n',
    ],
)
def test_json_answer_may_be_fenced(text: str) -> None:
    assert parse_json_answer("k", text) == {"a": 1}


def test_json_keeps_big_integers_and_unicode_exact() -> None:
    assert parse_json_answer("k", '{"id": 123456789012345678901234567890}') == {
        "id": 123456789012345678901234567890
    }
    assert render(rec("k", None, '["é", 1.5]'), "json") == '[\n  "é",\n  1.5\n]\n'.encode()


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[Infinity]",
        "1e400",
        "not json",
        'Here it is:\n```json\n{"a": 1}\n```',
        "{'a': 1}",
        "",
    ],
)
def test_non_json_answer_fails_clearly_for_that_input(text: str) -> None:
    with pytest.raises(SinkRecordError, match="not JSON") as info:
        parse_json_answer("k7", text)
    assert info.value.input_key == "k7"


def test_non_json_answer_is_refused_and_the_others_written(tmp_path: Path) -> None:
    """The executor dead-letters the refused input; the rest of the batch lands."""
    s = FilesSink(output(tmp_path, "json"))
    with pytest.raises(SinkRecordErrors) as info:
        s.upsert([rec("good", None, "[1]"), rec("bad", None, "nope")])
    s.close()
    assert [e.input_key for e in info.value.errors] == ["bad"]
    assert tree(tmp_path / "out") == {"good.json": b"[\n  1\n]\n"}


def test_message_content_has_sorted_keys(tmp_path: Path) -> None:
    s = FilesSink(output(tmp_path, "message"))
    s.upsert([rec("k", None, "hi")])
    s.close()
    data = (tmp_path / "out/k.json").read_bytes()
    assert orjson.loads(data) == rec("k", None, "hi").message
    assert data.index(b'"content"') < data.index(b'"id"') < data.index(b'"role"')
    assert data.endswith(b"}\n")


# ---------------------------------------------------------------------------------------
# Exactly once


def test_reapplying_the_same_records_rewrites_nothing(sink: FilesSink, tmp_path: Path) -> None:
    """A re-run finds the exact bytes in place: same inode, same mtime, one file each."""
    records = [rec("k1", "a/x.txt"), rec("k2", None)]
    sink.upsert(records)
    before = {p: inode(tmp_path / "out" / p) for p in tree(tmp_path / "out")}
    sink.upsert(records)
    after = {p: inode(tmp_path / "out" / p) for p in tree(tmp_path / "out")}
    assert before == after and len(after) == 2


def test_crash_between_sink_write_and_state_commit(tmp_path: Path) -> None:
    """Re-applying what state had not marked written, plus newer results, writes each once."""
    first = FilesSink(output(tmp_path))
    first.upsert([rec("k1", "x.txt", "1"), rec("k2", "y.txt", "2")])
    del first  # the process dies here: no flush, no close, state not updated
    kept = inode(tmp_path / "out/x.txt.md")
    second = FilesSink(output(tmp_path))
    second.upsert([rec("k1", "x.txt", "1"), rec("k2", "y.txt", "2"), rec("k3", "z.txt", "3")])
    second.close()
    assert tree(tmp_path / "out") == {"x.txt.md": b"1", "y.txt.md": b"2", "z.txt.md": b"3"}
    assert inode(tmp_path / "out/x.txt.md") == kept


KILLED_BEFORE_RENAME = """
import os, sys
from pathlib import Path
from runner.sinks import atomic
from runner.sinks.files import FilesSink
from runner.spec.model import OutputSpec
from tests.sinks.test_files import rec

real_replace = os.replace

def dying_replace(src, dst, **kwargs):
    if dst == "y.txt.md":
        os._exit(9)  # killed with y's answer fsynced in its temp file, not renamed
    real_replace(src, dst, **kwargs)

atomic.os.replace = dying_replace
sink = FilesSink(OutputSpec(type="files", path=Path(sys.argv[1]), keep_extension=True))
sink.upsert([rec("k1", "x.txt", "1"), rec("k2", "y.txt", "2")])
"""


def test_a_process_killed_mid_write_leaves_a_temp_the_next_run_cleans(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = [sys.executable, "-c", KILLED_BEFORE_RENAME, str(out)]
    assert subprocess.run(run, cwd=REPO, check=False).returncode == 9
    left = tree(out)  # x may or may not have landed: the writes run concurrently
    (temp,) = [name for name in left if name.startswith(".y.txt.md.")]
    assert temp.endswith(".batchrun-tmp") and left[temp] == b"2"
    assert "y.txt.md" not in left
    s = FilesSink(output(tmp_path))
    s.upsert([rec("k1", "x.txt", "1"), rec("k2", "y.txt", "2")])
    s.close()
    assert tree(out) == {"x.txt.md": b"1", "y.txt.md": b"2"}


def test_torn_temp_files_are_cleaned_on_open(tmp_path: Path) -> None:
    (tmp_path / "out/sub").mkdir(parents=True)
    (tmp_path / "out/.x.txt.md.0123456789abcdef.batchrun-tmp").write_bytes(b"to")
    (tmp_path / "out/sub/.y.md.fedcba9876543210.batchrun-tmp").write_bytes(b"rn")
    (tmp_path / "out/keep.tmp").write_bytes(b"not ours")
    FilesSink(output(tmp_path)).close()
    assert tree(tmp_path / "out") == {"keep.tmp": b"not ours"}


def test_a_changed_result_replaces_the_old_one(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert([rec("k", "a.txt", "old", cid="c1")])
    sink.upsert([rec("k", "a.txt", "new answer", cid="c2")])
    assert tree(tmp_path / "out") == {"a.txt.md": b"new answer"}


def test_a_key_twice_in_one_call_keeps_the_last(sink: FilesSink, tmp_path: Path) -> None:
    """Files are written concurrently, yet the later record of a key wins, as in order."""
    sink.upsert([rec("k", "a.txt", "first"), rec("j", "b.txt"), rec("k", "a.txt", "last")])
    assert (tmp_path / "out/a.txt.md").read_bytes() == b"last"


def test_many_inputs_across_folders_land_once_each(sink: FilesSink, tmp_path: Path) -> None:
    records = [rec(f"k{i}", f"d{i % 7}/e{i % 3}/f{i}.txt", f"answer {i}") for i in range(300)]
    sink.upsert(records)
    sink.flush()
    expected = {f"d{i % 7}/e{i % 3}/f{i}.txt.md": f"answer {i}".encode() for i in range(300)}
    assert tree(tmp_path / "out") == expected


def test_same_size_change_is_still_written(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert([rec("k", "a.txt", "aaa")])
    sink.upsert([rec("k", "a.txt", "bbb", cid="c2")])
    assert (tmp_path / "out/a.txt.md").read_bytes() == b"bbb"


# ---------------------------------------------------------------------------------------
# Dead letters


def read_dead(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (tmp_path / "out.dead.jsonl").read_bytes().splitlines()]


def test_dead_letters_go_beside_the_folder(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert_dead([dead("b"), dead("a")])
    rows = read_dead(tmp_path)
    assert [r["input_key"] for r in rows] == ["a", "b"]
    assert rows[0] == {
        "input_key": "a", "input_path": None, "custom_id": "c0", "outcome": "errored",
        "error_type": "invalid_request_error", "error_message": "bad", "attempts": 1,
        "batch_id": "b", "spec_hash": "h", "at": "t",
    }  # fmt: skip
    assert tree(tmp_path / "out") == {}


def test_dead_letters_are_idempotent_and_survive_reopen(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert_dead([dead("a")])
    before = inode(tmp_path / "out.dead.jsonl")
    sink.upsert_dead([dead("a")])
    assert inode(tmp_path / "out.dead.jsonl") == before
    again = FilesSink(output(tmp_path))
    again.upsert_dead([dead("a")])
    again.close()
    assert inode(tmp_path / "out.dead.jsonl") == before


def test_success_removes_the_dead_letter(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert_dead([dead("a"), dead("b")])
    sink.upsert([rec("a", None, "fixed")])
    assert [r["input_key"] for r in read_dead(tmp_path)] == ["b"]
    sink.upsert([rec("b", None, "fixed too")])
    assert not (tmp_path / "out.dead.jsonl").exists()


def test_a_dead_letter_removes_the_inputs_answer(sink: FilesSink, tmp_path: Path) -> None:
    """An input has a result or a dead letter, never both (as in the JSONL sink)."""
    sink.upsert([rec("k1", "a/x.txt"), rec("k2", None), rec("k3", "b.txt")])
    sink.upsert_dead([dead("k1", "a/x.txt"), dead("k2", None)])
    sink.upsert_dead([dead("k1", "a/x.txt")])  # again: nothing left to remove
    assert tree(tmp_path / "out") == {"b.txt.md": b"hello"}
    assert [r["input_key"] for r in read_dead(tmp_path)] == ["k1", "k2"]


def test_a_dead_letter_never_removes_anything_outside(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/x.txt.md").write_bytes(b"precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/link").symlink_to(tmp_path / "outside")
    (tmp_path / "out/y.txt.md").symlink_to(tmp_path / "outside/x.txt.md")
    s = FilesSink(output(tmp_path))
    s.upsert_dead([dead("a", "link/x.txt"), dead("b", "../outside/x.txt"), dead("c", "y.txt")])
    s.close()
    assert (tmp_path / "outside/x.txt.md").read_bytes() == b"precious"
    assert (tmp_path / "out/y.txt.md").is_symlink()


def test_a_refused_record_keeps_its_dead_letter(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert_dead([dead("a")])
    with pytest.raises(SinkRecordErrors):
        sink.upsert([rec("a", "../a.txt")])
    assert [r["input_key"] for r in read_dead(tmp_path)] == ["a"]


# ---------------------------------------------------------------------------------------
# Traversal


def outside_snapshot(tmp_path: Path) -> set[str]:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "out" not in p.parts}


@pytest.mark.parametrize(
    "path",
    ["../x", "/etc/passwd", "a/../../b", "..", "a/..", "./a", "a//b", "a\0b", "C:/x", "c:x",
     "a\\..\\b", "", "a/"],
)  # fmt: skip
def test_paths_that_could_escape_are_refused(tmp_path: Path, path: str) -> None:
    (tmp_path / "outside").mkdir()
    before = outside_snapshot(tmp_path)
    s = FilesSink(output(tmp_path))
    with pytest.raises(SinkRecordErrors) as info:
        s.upsert([rec("evil", path), rec("fine", "ok.txt")])
    s.close()
    (error,) = info.value.errors
    assert error.input_key == "evil" and "refused output path" in error.message
    assert repr(path) in error.message
    assert tree(tmp_path / "out") == {"ok.txt.md": b"hello"}
    assert outside_snapshot(tmp_path) == before
    assert not Path("/etc/passwd.md").exists()


SEGMENTS = st.sampled_from(["..", ".", "", "a", "b.txt", "C:", "\\", "\0", "~", "link"])


@settings(max_examples=150, deadline=None)
@given(st.lists(SEGMENTS, min_size=1, max_size=6), st.sampled_from(["/", "\\", ""]))
def test_no_input_path_writes_outside_the_output(segments: list[str], sep: str) -> None:
    """Whatever the path, the file lands under out/ or the input is refused."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "outside").mkdir()
        (root / "out").mkdir()
        (root / "out/link").symlink_to(root / "outside")
        s = FilesSink(output(root))
        try:
            s.upsert([rec("k", sep.join(segments))])
        except SinkRecordErrors:
            pass
        finally:
            s.close()
        assert list((root / "outside").iterdir()) == []
        assert sorted(p.name for p in root.iterdir()) == ["out", "outside"]


def test_a_symlinked_folder_inside_the_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out/link").symlink_to(tmp_path / "outside")
    s = FilesSink(output(tmp_path))
    with pytest.raises(SinkRecordErrors) as info:
        s.upsert([rec("evil", "link/x.txt"), rec("evil2", "link/deeper/x.txt")])
    s.close()
    messages = [(e.input_key, e.message) for e in info.value.errors]
    assert messages == [
        ("evil", "refused output folder 'link': a symlink or a file is in the way"),
        ("evil2", "refused output folder 'link/deeper': a symlink or a file is in the way"),
    ]
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_symlinked_file_inside_the_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/target").write_bytes(b"precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/x.txt.md").symlink_to(tmp_path / "outside/target")
    s = FilesSink(output(tmp_path))
    with pytest.raises(SinkRecordErrors, match="not a regular file"):
        s.upsert([rec("evil", "x.txt")])
    s.close()
    assert (tmp_path / "outside/target").read_bytes() == b"precious"
    assert (tmp_path / "out/x.txt.md").is_symlink()


def test_a_file_where_a_folder_should_be_is_refused(sink: FilesSink, tmp_path: Path) -> None:
    sink.upsert([rec("k1", "a")])
    (tmp_path / "out/a").write_bytes(b"file")
    with pytest.raises(SinkRecordErrors, match="refused output folder 'a'"):
        sink.upsert([rec("k2", "a/b.txt")])


def test_a_name_too_long_for_the_filesystem_is_refused(sink: FilesSink) -> None:
    with pytest.raises(SinkRecordErrors, match="longer than 255 bytes"):
        sink.upsert([rec("k", "x" * 254)])


def test_a_name_shaped_like_a_temp_file_is_refused(tmp_path: Path) -> None:
    s = FilesSink(output(tmp_path, suffix=".batchrun-tmp"))
    with pytest.raises(SinkRecordErrors, match="temp file"):
        s.upsert([rec("k", ".a.0123456789abcdef")])
    s.close()


def test_close_is_idempotent_and_later_writes_fail(tmp_path: Path) -> None:
    s = FilesSink(output(tmp_path))
    s.close()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        s.upsert([rec()])


def test_an_output_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"")
    with pytest.raises(BatchrunError, match="must be a folder"):
        FilesSink(output(tmp_path))


def test_json_content_of_a_structured_answer_is_its_validated_object() -> None:
    """With an output schema the parsed `data` is written, whatever the text holds."""
    from dataclasses import replace

    record = replace(rec(text="not used"), data={"topic": "billing", "n": 2**70})
    assert render(record, "json") == b'{\n  "topic": "billing",\n  "n": 1180591620717411303424\n}\n'
