"""runner.inputs: globs, records, keys and content blocks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from runner import limits, storage
from runner.errors import InputError
from runner.globs import glob_regex
from runner.inputs import object_stats
from runner.render import keyed_inputs
from tests.fake_gcs import FakeGCS
from tests.jobkit import pdf_bytes, png_bytes, unchecked_job, write_job
from tests.services import Bucket, s3_client


def _keys(job_dir: Path, files: dict[str, str | bytes], **overrides: object) -> list[str]:
    job = write_job(job_dir, files, **overrides)
    return [item.key for item in keyed_inputs(job)]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("data/*.txt", "data/a.txt", True),
        ("data/*.txt", "data/sub/a.txt", False),
        ("data/**/*.txt", "data/a.txt", True),
        ("data/**/*.txt", "data/x/y/a.txt", True),
        ("**/draft-*", "draft-1.txt", True),
        ("**/draft-*", "a/b/draft-1.txt", True),
        ("**/draft-*", "a/b/final.txt", False),
        ("data/?.txt", "data/ab.txt", False),
        ("data/[ab].txt", "data/b.txt", True),
        ("data/[!ab].txt", "data/b.txt", False),
        ("data/a+b.txt", "data/a+b.txt", True),
    ],
)
def test_glob_regex(pattern: str, path: str, matches: bool) -> None:
    """`*` stays in one folder, `**/` spans any number of folders, including none."""
    assert bool(glob_regex(pattern).match(path)) is matches


def test_glob_recurses_excludes_and_sorts(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "data/b.txt": "b",
        "data/a.txt": "a",
        "data/sub/deeper/c.txt": "c",
        "data/sub/draft-d.txt": "d",
        "data/e.md": "e",
    }
    keys = _keys(tmp_path, files, input={"glob": "data/**/*.txt", "exclude": ["**/draft-*"]})
    assert keys == ["data/a.txt", "data/b.txt", "data/sub/deeper/c.txt"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.txt", ["top.txt"]),
        ("data/*.txt", ["data/a.txt"]),
        ("data/*/*.txt", ["data/sub/b.txt"]),
        ("data/**/*.txt", ["data/a.txt", "data/sub/b.txt", "data/sub/deep/c.txt"]),
        ("**/*.txt", ["data/a.txt", "data/sub/b.txt", "data/sub/deep/c.txt", "top.txt"]),
        ("data/sub/deep/c.txt", ["data/sub/deep/c.txt"]),
    ],
)
def test_glob_depths(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    files: dict[str, str | bytes] = {
        "top.txt": "t",
        "data/a.txt": "a",
        "data/sub/b.txt": "b",
        "data/sub/deep/c.txt": "c",
    }
    assert _keys(tmp_path, files, input={"glob": pattern}) == expected


def test_glob_skips_folders_that_match(tmp_path: Path) -> None:
    (tmp_path / "data" / "folder.txt").mkdir(parents=True)
    assert _keys(tmp_path, {"data/a.txt": "a"}) == ["data/a.txt"]


def test_file_context(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/note.v1.txt": "héllo"})
    (item,) = keyed_inputs(job)
    assert item.path == "data/note.v1.txt" and item.blocks == []
    assert dict(item.context) == {
        "path": "data/note.v1.txt",
        "name": "note.v1.txt",
        "stem": "note.v1",
        "bytes": 6,
        "text": "héllo",
    }


def test_undecodable_text_names_file_and_offset(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/a.txt": b"ok \xff bad"})
    with pytest.raises(InputError, match=r"data/a\.txt: not valid UTF-8 at byte offset 3"):
        list(keyed_inputs(job))


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/a.txt": ""})
    with pytest.raises(InputError, match=r"data/a\.txt: the file is empty"):
        list(keyed_inputs(job))


def test_file_too_large_for_any_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_REQUEST_BYTES", 10)
    job = write_job(tmp_path, {"data/a.txt": "x" * 11})
    with pytest.raises(InputError, match="more than a request may hold"):
        list(keyed_inputs(job))


def test_document_block_from_a_real_pdf(tmp_path: Path) -> None:
    pdf = pdf_bytes("Quarterly report")
    job = write_job(tmp_path, {"docs/r.pdf": pdf}, input={"glob": "docs/*.pdf", "as": "document"})
    (item,) = keyed_inputs(job)
    (block,) = item.blocks
    assert block["type"] == "document"
    assert block["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(block["source"]["data"]) == pdf
    assert "text" not in item.context and item.context["bytes"] == len(pdf)


def test_document_must_be_a_pdf(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"docs/r.pdf": "plain"}, input={"glob": "docs/*", "as": "document"})
    with pytest.raises(InputError, match="not a PDF"):
        list(keyed_inputs(job))


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (png_bytes(), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 8, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 8, "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8, "image/webp"),
    ],
)
def test_image_media_type_from_content_not_name(
    tmp_path: Path, data: bytes, media_type: str
) -> None:
    """Every file is named .jpg: the media type comes from the magic bytes."""
    job = write_job(tmp_path, {"img/x.jpg": data}, input={"glob": "img/*", "as": "image"})
    (item,) = keyed_inputs(job)
    assert item.blocks[0]["type"] == "image"
    assert item.blocks[0]["source"] == {
        "type": "base64",
        "media_type": media_type,
        "data": base64.b64encode(data).decode(),
    }


def test_not_an_image(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"img/x.png": "text"}, input={"glob": "img/*", "as": "image"})
    with pytest.raises(InputError, match="not a PNG, JPEG, GIF or WebP"):
        list(keyed_inputs(job))


def test_jsonl_records_skip_blank_lines_and_keep_line_numbers(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        {"a.jsonl": '{"id": "x"}\n\n  \n{"id": "y", "n": 2}\n'},
        input={"jsonl": "a.jsonl"},
        prompt="{{ input.record.id }}",
    )
    items = list(keyed_inputs(job))
    assert [i.key for i in items] == ["1", "4"]
    assert items[1].context == {"record": {"id": "y", "n": 2}, "line": 4}
    assert items[1].path is None


def test_jsonl_malformed_line_names_its_number(tmp_path: Path) -> None:
    job = write_job(
        tmp_path, {"a.jsonl": '{"id": 1}\n{"id": \n'}, input={"jsonl": "a.jsonl"}, prompt="x"
    )
    with pytest.raises(InputError, match=r"a\.jsonl:2: not valid JSON"):
        list(keyed_inputs(job))


def test_jsonl_line_must_be_an_object(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"a.jsonl": "[1, 2]\n"}, input={"jsonl": "a.jsonl"}, prompt="x")
    with pytest.raises(InputError, match=r"a\.jsonl:1: each line must be a JSON object, not list"):
        list(keyed_inputs(job))


def test_csv_records_are_strings_with_start_lines(tmp_path: Path) -> None:
    text = 'id,text,n\na,"two\nlines",1\nb,plain,2\n'
    job = write_job(tmp_path, {"a.csv": text}, input={"csv": "a.csv"}, prompt="x")
    items = list(keyed_inputs(job))
    assert [i.context["line"] for i in items] == [2, 4]
    assert items[0].context["record"] == {"id": "a", "text": "two\nlines", "n": "1"}


def test_csv_ragged_row_names_its_line(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"a.csv": "id,text\na,b\nc\n"}, input={"csv": "a.csv"}, prompt="x")
    with pytest.raises(InputError, match=r"a\.csv:3: 1 fields where the header has 2"):
        list(keyed_inputs(job))


def test_csv_empty_file(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"a.csv": ""}, input={"csv": "a.csv"}, prompt="x")
    with pytest.raises(InputError, match="needs a header row"):
        list(keyed_inputs(job))


def test_key_template_sees_record_fields(tmp_path: Path) -> None:
    keys = _keys(
        tmp_path,
        {"a.jsonl": '{"id": "x"}\n{"id": "y"}\n'},
        input={"jsonl": "a.jsonl", "key": "{{ record.id }}-{{ input.line }}"},
        prompt="x",
    )
    assert keys == ["x-1", "y-2"]


def test_duplicate_keys_name_both_inputs(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        {"a.jsonl": '{"id": "x"}\n{"id": "z"}\n{"id": "x"}\n'},
        input={"jsonl": "a.jsonl", "key": "{{ record.id }}"},
        prompt="x",
    )
    with pytest.raises(InputError, match="inputs line 1 and line 3 have the same key 'x'"):
        list(keyed_inputs(job))


def test_key_template_missing_field(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        {"a.jsonl": '{"id": "x"}\n{"name": "y"}\n'},
        input={"jsonl": "a.jsonl", "key": "{{ record.id }}"},
        prompt="x",
    )
    with pytest.raises(InputError, match=r"job\.yaml:\d+: \$\.input\.key: input line 2: .*id"):
        list(keyed_inputs(job))


def test_missing_record_file(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"a.jsonl": "{}\n"}, input={"jsonl": "a.jsonl"}, prompt="x")
    (tmp_path / "a.jsonl").unlink()
    with pytest.raises(InputError, match="does not exist"):
        list(keyed_inputs(job))


# ---------------------------------------------------------------------------------------
# Inputs in object storage: S3 (moto's server, the real s3fs stack), GCS (a fake)


def _put(bucket: Bucket, objects: dict[str, bytes]) -> None:
    client = s3_client()
    for key, body in objects.items():
        client.put_object(Bucket=bucket.name, Key=key, Body=body)


def test_s3_glob_lists_objects_like_files(tmp_path: Path, s3_bucket: Bucket) -> None:
    """An object's path is its key below the bucket; exclude and `**` work as on disk."""
    _put(s3_bucket, {"docs/a.txt": b"alpha", "docs/s/b.txt": b"beta", "docs/draft-c.txt": b"c"})
    job = write_job(
        tmp_path, input={"glob": s3_bucket.url("docs/**/*.txt"), "exclude": ["**/draft-*"]}
    )
    items = list(keyed_inputs(job))
    assert [(i.key, i.path) for i in items] == [("docs/a.txt",) * 2, ("docs/s/b.txt",) * 2]
    assert items[1].context == {"path": "docs/s/b.txt", "name": "b.txt", "stem": "b",
                                "bytes": 4, "text": "beta"}  # fmt: skip


def test_s3_documents_and_images(tmp_path: Path, s3_bucket: Bucket) -> None:
    _put(s3_bucket, {"scans/a.pdf": pdf_bytes(), "pics/p.png": png_bytes()})
    for folder in ("d", "i"):
        (tmp_path / folder).mkdir()
    docs = write_job(tmp_path / "d", input={"glob": s3_bucket.url("scans/*.pdf"), "as": "document"})
    pics = write_job(tmp_path / "i", input={"glob": s3_bucket.url("pics/*"), "as": "image"})
    [doc], [pic] = list(keyed_inputs(docs)), list(keyed_inputs(pics))
    assert doc.blocks[0]["type"] == "document"
    assert base64.b64decode(doc.blocks[0]["source"]["data"]) == pdf_bytes()
    assert pic.blocks[0]["source"]["media_type"] == "image/png"


def test_s3_jsonl_and_csv_records(tmp_path: Path, s3_bucket: Bucket) -> None:
    _put(
        s3_bucket,
        {
            "in/r.jsonl": b'{"id": "x", "q": "one"}\n\n{"id": "y", "q": "two"}\n',
            "in/r.csv": "\ufeffid,q\nx,one\ny,two\n".encode(),
        },
    )
    for kind in ("jsonl", "csv"):
        (tmp_path / kind).mkdir()
        job = write_job(
            tmp_path / kind,
            input={kind: s3_bucket.url(f"in/r.{kind}"), "key": "{{ record.id }}"},
            prompt="{{ input.record.q }}",
        )
        items = list(keyed_inputs(job))
        assert [(i.key, i.context["record"]["q"]) for i in items] == [("x", "one"), ("y", "two")]


def test_object_errors_name_the_object(tmp_path: Path, s3_bucket: Bucket) -> None:
    _put(s3_bucket, {"bad/a.txt": b"\xff\xfe", "bad/r.jsonl": b"[1]\n"})
    (tmp_path / "t").mkdir()
    (tmp_path / "r").mkdir()
    text = write_job(tmp_path / "t", input={"glob": s3_bucket.url("bad/*.txt")})
    with pytest.raises(InputError, match=rf"^s3://{s3_bucket.name}/bad/a.txt: not valid UTF-8"):
        list(keyed_inputs(text))
    records = write_job(
        tmp_path / "r", input={"jsonl": s3_bucket.url("bad/r.jsonl")}, prompt="{{ input.line }}"
    )
    with pytest.raises(InputError, match=rf"^s3://{s3_bucket.name}/bad/r.jsonl:1: each line"):
        list(keyed_inputs(records))


def test_object_stats_read_no_object(tmp_path: Path) -> None:
    """What an incremental run compares: key, size and ETag, from a listing alone."""
    fake = FakeGCS()
    fake.pipe({"bkt/d/a.txt": b"aa", "bkt/d/b.txt": b"b", "bkt/r.jsonl": b"{}\n"})
    for folder in ("g", "r", "l"):
        (tmp_path / folder).mkdir()
    with storage.use_filesystem("gs", fake):
        glob = unchecked_job(tmp_path / "g", input={"glob": "gs://bkt/d/*.txt"})
        records = unchecked_job(tmp_path / "r", input={"jsonl": "gs://bkt/r.jsonl"})
        stats = object_stats(glob)
        assert stats is not None and [(s.key, s.size) for s in stats] == [
            ("d/a.txt", 2),
            ("d/b.txt", 1),
        ]
        assert [s.key for s in object_stats(records) or ()] == ["r.jsonl"]
        assert object_stats(write_job(tmp_path / "l", {"data/a.txt": "x"})) is None
    assert fake.reads == 0
