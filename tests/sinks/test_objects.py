"""The jsonl and files sinks on object storage: the on-disk contract (one current result
per input key, dead letters beside, idempotent re-application), on a fake GCS and on S3."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from runner import storage
from runner.records import ResultRecord
from runner.sinks import SinkRecordErrors
from runner.sinks.objects import ObjectFilesSink, ObjectJsonlSink, holds_results
from runner.spec.model import OutputSpec
from runner.storage import Url, parse_url
from tests.fake_gcs import FakeGCS
from tests.services import Bucket
from tests.sinks.test_jsonl import dead, rec

OUT = parse_url("gs://bkt/out/answers.jsonl")
DEAD = parse_url("gs://bkt/out/answers.jsonl.dead.jsonl")


@pytest.fixture
def gcs() -> Iterator[FakeGCS]:
    fake = FakeGCS()
    with storage.use_filesystem("gs", fake):
        yield fake


def lines(url: Url) -> list[dict[str, object]]:
    data = storage.storage(url.scheme).fetch(url)
    return [orjson.loads(x) for x in data.splitlines()] if data else []


def keys(url: Url) -> list[str]:
    return [str(x["input_key"]) for x in lines(url)]


def jsonl_write(url: Url, records: list[ResultRecord]) -> None:
    sink = ObjectJsonlSink(url)
    sink.upsert(records)
    sink.close()


# ---------------------------------------------------------------------------------------
# JSONL


def test_jsonl_object_holds_one_line_per_key(gcs: FakeGCS) -> None:
    """New keys are added, a key with a new custom_id is replaced, in one whole object."""
    jsonl_write(OUT, [rec("a", "1"), rec("b", "2")])
    jsonl_write(OUT, [rec("b", "3", text="new"), rec("c", "4")])
    found = lines(OUT)
    assert [(x["input_key"], x["custom_id"]) for x in found] == [("a", "1"), ("b", "3"), ("c", "4")]


def test_jsonl_reapplying_the_same_records_uploads_nothing(gcs: FakeGCS) -> None:
    jsonl_write(OUT, [rec("a", "1"), rec("b", "2")])
    writes = gcs.writes
    jsonl_write(OUT, [rec("a", "1"), rec("b", "2")])
    assert gcs.writes == writes and keys(OUT) == ["a", "b"]


def test_jsonl_sink_with_nothing_to_write_reads_nothing(gcs: FakeGCS) -> None:
    jsonl_write(OUT, [rec("a", "1")])
    reads, writes = gcs.reads, gcs.writes
    ObjectJsonlSink(OUT).close()
    assert (gcs.reads, gcs.writes) == (reads, writes)


def test_jsonl_dead_letters_go_beside_and_replace_results(gcs: FakeGCS) -> None:
    sink = ObjectJsonlSink(OUT)
    sink.upsert([rec("a", "1"), rec("b", "2")])
    sink.flush()
    sink.upsert_dead([dead("b", "2")])
    sink.flush()
    assert keys(OUT) == ["a"] and keys(DEAD) == ["b"]
    sink.upsert_lines([("b", "5", orjson.dumps(rec("b", "5"), default=dict))])
    sink.close()
    assert keys(OUT) == ["a", "b"] and keys(DEAD) == []


def test_jsonl_each_flush_uploads_the_whole_object(gcs: FakeGCS) -> None:
    """A reader between two flushes sees the first page whole: never a partial object."""
    sink = ObjectJsonlSink(OUT)
    sink.upsert([rec("a", "1")])
    sink.flush()
    assert keys(OUT) == ["a"]
    sink.upsert([rec("b", "2")])
    assert keys(OUT) == ["a"]  # not flushed yet: the object is the last whole one
    sink.close()
    assert keys(OUT) == ["a", "b"]


# ---------------------------------------------------------------------------------------
# Files


def files_sink(url: str) -> tuple[OutputSpec, Url, ObjectFilesSink]:
    """A files output at `url`, its URL, and a sink writing it."""
    parsed = parse_url(url)
    out = OutputSpec(type="files", path=None, url=parsed)
    return out, parsed, ObjectFilesSink(out, parsed)


def test_files_one_object_per_input(gcs: FakeGCS) -> None:
    out, url, sink = files_sink("gs://bkt/answers/")
    a = rec("docs/a.txt", "1", text="answer a")
    sink.upsert([ResultRecord(**{**a.__dict__, "input_path": "docs/a.txt"}), rec("r-7", "2")])
    sink.close()
    store = storage.storage("gs")
    assert store.read(parse_url("gs://bkt/answers/docs/a.md")) == b"answer a"  # as files name
    assert store.read(parse_url("gs://bkt/answers/r-7.md")) == b"t"
    assert holds_results(out, url)


def test_files_a_refused_input_does_not_stop_the_others(gcs: FakeGCS) -> None:
    _, _, sink = files_sink("gs://bkt/answers")
    bad = ResultRecord(**{**rec("x", "1").__dict__, "input_path": "../escape.txt"})
    with pytest.raises(SinkRecordErrors) as caught:
        sink.upsert([bad, rec("ok", "2")])
    assert [e.input_key for e in caught.value.errors] == ["x"]
    assert storage.storage("gs").read(parse_url("gs://bkt/answers/ok.md")) == b"t"


def test_files_dead_letter_removes_the_answer_and_a_result_the_letter(gcs: FakeGCS) -> None:
    out, url, sink = files_sink("gs://bkt/answers")
    answer, letters = parse_url("gs://bkt/answers/k.md"), parse_url("gs://bkt/answers.dead.jsonl")
    sink.upsert([rec("k", "1")])
    sink.upsert_dead([dead("k", "1")])
    store = storage.storage("gs")
    assert store.stat(answer) is None and keys(letters) == ["k"]
    again = ObjectFilesSink(out, url)  # a later run: reads the letters on first use
    again.upsert([rec("k", "2")])
    assert store.stat(answer) is not None and store.stat(letters) is None


def test_holds_results_of_an_absent_output(gcs: FakeGCS) -> None:
    assert not holds_results(OutputSpec(type="jsonl", path=None, url=OUT), OUT)
    out, url, _ = files_sink("gs://bkt/none/")
    assert not holds_results(out, url)


# ---------------------------------------------------------------------------------------
# S3, through s3fs and moto's server


def test_s3_jsonl_and_files_sinks(s3_bucket: Bucket) -> None:
    results = parse_url(s3_bucket.url("results/r.jsonl"))
    jsonl_write(results, [rec("a", "1"), rec("b", "2")])
    jsonl_write(results, [rec("a", "3")])
    assert [(x["input_key"], x["custom_id"]) for x in lines(results)] == [("a", "3"), ("b", "2")]
    out, url, sink = files_sink(s3_bucket.url("answers"))
    assert not holds_results(out, url)
    sink.upsert([rec("a", "1"), rec("b", "2")])
    sink.upsert_dead([dead("b", "2")])
    found = storage.storage("s3").find(parse_url(s3_bucket.url()), "**")
    assert [s.key for s in found] == ["answers.dead.jsonl", "answers/a.md", "results/r.jsonl"]
    assert holds_results(out, url)
