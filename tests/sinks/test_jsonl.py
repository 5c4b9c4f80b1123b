"""The JSONL sink: one line per input key, whatever is replayed or torn."""

from __future__ import annotations

from pathlib import Path

import orjson

from runner.records import DeadLetter, ResultRecord
from runner.sinks.jsonl import JsonlSink, dead_letter_path


def rec(key: str, cid: str, text: str = "t") -> ResultRecord:
    return ResultRecord(
        input_key=key,
        input_path=None,
        custom_id=cid,
        text=text,
        message={"id": "m"},
        usage={"input_tokens": 1},
        cost_usd=0.1,
        batch_id="b",
        model="m",
        spec_hash="s",
        attempts=1,
        collected_at="2026-01-01T00:00:00Z",
    )


def dead(key: str, cid: str) -> DeadLetter:
    return DeadLetter(
        input_key=key,
        input_path=None,
        custom_id=cid,
        outcome="errored",
        error_type="invalid_request_error",
        error_message="bad",
        attempts=1,
        batch_id="b",
        spec_hash="s",
        at="2026-01-01T00:00:00Z",
    )


def read(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


def write(path: Path, records: list[ResultRecord]) -> None:
    sink = JsonlSink(path)
    sink.upsert(records)
    sink.close()


def test_new_keys_are_appended(tmp_path: Path) -> None:
    """Each record becomes one line with the contract's fields."""
    out = tmp_path / "o" / "x.jsonl"
    write(out, [rec("a", "1"), rec("b", "2")])
    lines = read(out)
    assert [x["input_key"] for x in lines] == ["a", "b"]
    assert {
        "input_key",
        "custom_id",
        "outcome",
        "text",
        "message",
        "usage",
        "cost_usd",
        "batch_id",
        "model",
        "spec_hash",
    } <= set(lines[0])


def test_replaying_is_a_no_op(tmp_path: Path) -> None:
    """The same records written again, in a new sink instance, change nothing."""
    out = tmp_path / "x.jsonl"
    write(out, [rec("a", "1"), rec("b", "2")])
    before = out.read_bytes()
    write(out, [rec("b", "2"), rec("a", "1")])
    assert out.read_bytes() == before


def test_new_custom_id_replaces_the_line(tmp_path: Path) -> None:
    """A key's newer request replaces its line in place; other lines are untouched."""
    out = tmp_path / "x.jsonl"
    write(out, [rec("a", "1"), rec("b", "2")])
    write(out, [rec("a", "9", "new")])
    lines = read(out)
    assert [(x["input_key"], x["custom_id"]) for x in lines] == [("a", "9"), ("b", "2")]


def test_torn_last_line_is_dropped(tmp_path: Path) -> None:
    """A crash mid-append leaves a line without newline: it is cut on open, then rewritten."""
    out = tmp_path / "x.jsonl"
    write(out, [rec("a", "1")])
    with out.open("ab") as f:
        f.write(orjson.dumps(rec("b", "2"))[:30])
    write(out, [rec("b", "2")])
    assert [x["input_key"] for x in read(out)] == ["a", "b"]


def test_duplicates_and_junk_are_removed(tmp_path: Path) -> None:
    """A file with a duplicate key or junk line is cleaned on the next flush."""
    out = tmp_path / "x.jsonl"
    out.write_bytes(
        orjson.dumps(rec("a", "1")) + b"\nnot json\n" + orjson.dumps(rec("a", "1")) + b"\n"
    )
    write(out, [rec("b", "2")])
    assert [x["input_key"] for x in read(out)] == ["a", "b"]


def test_dead_letter_and_result_exclude_each_other(tmp_path: Path) -> None:
    """A dead letter removes the key's result line and a later result removes the letter."""
    out = tmp_path / "x.jsonl"
    sink = JsonlSink(out)
    sink.upsert([rec("a", "1"), rec("b", "2")])
    sink.upsert_dead([dead("a", "3")])
    sink.close()
    assert [x["input_key"] for x in read(out)] == ["b"]
    assert [x["custom_id"] for x in read(dead_letter_path(out))] == ["3"]
    sink = JsonlSink(out)
    sink.upsert([rec("a", "4")])
    sink.close()
    assert read(dead_letter_path(out)) == [] and len(read(out)) == 2


def test_dead_letter_path_sits_beside_output(tmp_path: Path) -> None:
    assert dead_letter_path(tmp_path / "x.jsonl") == tmp_path / "x.jsonl.dead.jsonl"


def test_same_key_twice_in_one_flush_keeps_the_last(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    sink = JsonlSink(out)
    sink.upsert([rec("a", "1"), rec("a", "2")])
    sink.close()
    assert [x["custom_id"] for x in read(out)] == ["2"]


def test_stored_record_bytes_are_the_line_upsert_writes(tmp_path: Path) -> None:
    """The collect fast path hands the sink the bytes state stores (Store: orjson of the
    record): they must be exactly what `upsert` writes, replacements and dead letters too."""
    records = [rec("a", "c1", 'tëxt "q"'), rec("b", "c2"), rec("a", "c3", "new")]
    by_records, by_lines = tmp_path / "r.jsonl", tmp_path / "l.jsonl"
    for path, put in ((by_records, "records"), (by_lines, "lines")):
        sink = JsonlSink(path)
        sink.upsert_dead([dead("b", "d1")])
        sink.flush()
        for r in records:
            if put == "records":
                sink.upsert([r])
            else:
                sink.upsert_lines([(r.input_key, r.custom_id, orjson.dumps(r))])
            sink.flush()
        sink.close()
    assert by_lines.read_bytes() == by_records.read_bytes()
    assert [x["custom_id"] for x in read(by_lines)] == ["c3", "c2"]  # replaced in place
    assert read(dead_letter_path(by_lines)) == read(dead_letter_path(by_records)) == []


def test_open_and_close_with_nothing_to_write_leaves_the_file_alone(tmp_path: Path) -> None:
    """A no-op run opens the sink and closes it: the file is neither read nor rewritten,
    even with junk in it; the next real write cleans it up as usual."""
    out = tmp_path / "x.jsonl"
    junk = orjson.dumps(rec("a", "1")) + b"\nnot json\n" + orjson.dumps(rec("b", "2"))[:30]
    out.write_bytes(junk)
    sink = JsonlSink(out)
    sink.flush()
    sink.close()
    assert out.read_bytes() == junk and sink.results.index == {}
    write(out, [rec("c", "3")])
    assert [x["input_key"] for x in read(out)] == ["a", "c"]


def test_index_reads_the_head_of_batchruns_lines_and_any_other_line_whole(tmp_path: Path) -> None:
    """Keys with escapes, and lines in another field order (edited by hand), index alike."""
    from runner.sinks.jsonl import KeyedJsonl

    path = tmp_path / "out.jsonl"
    lines = [
        orjson.dumps({"input_key": 'a"b\\c', "input_path": None, "custom_id": "br_1", "x": 1}),
        orjson.dumps({"input_key": "p/é.txt", "input_path": "p/é.txt", "custom_id": "br_2"}),
        orjson.dumps({"custom_id": "br_3", "text": "t", "input_key": "late"}),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    keyed = KeyedJsonl(path)
    keyed.put("new", "br_4", b"{}")
    assert keyed.index == {'a"b\\c': "br_1", "p/é.txt": "br_2", "late": "br_3", "new": "br_4"}
