"""runner.storage: URLs, the extras they need, and each store operation, on a fake GCS
(in memory), on file:// (the real local filesystem) and on S3 (moto's server)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import storage
from runner.storage import StorageError, Url, UrlError, parse_url
from tests.fake_gcs import FakeGCS
from tests.services import Bucket, s3_client


@pytest.fixture
def gcs() -> Iterator[FakeGCS]:
    fake = FakeGCS()
    with storage.use_filesystem("gs", fake):
        yield fake


# ---------------------------------------------------------------------------------------
# URLs


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("s3://my-bucket/docs/a.txt", Url("s3", "my-bucket", "docs/a.txt")),
        ("s3://my-bucket", Url("s3", "my-bucket", "")),
        ("s3://my-bucket/out/", Url("s3", "my-bucket", "out/")),
        ("gs://my_bucket.example/x/**/*.pdf", Url("gs", "my_bucket.example", "x/**/*.pdf")),
        ("S3://abc/k", Url("s3", "abc", "k")),
        ("s3://abc/data/?.txt", Url("s3", "abc", "data/?.txt")),
        ("file:///srv/data/a.csv", Url("file", "", "srv/data/a.csv")),
        ("file://localhost/srv/a.csv", Url("file", "", "srv/a.csv")),
    ],
)
def test_parse_url(text: str, url: Url) -> None:
    assert parse_url(text) == url


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("http://example.com/a.txt", "unsupported URL scheme 'http://'"),
        ("s3://AKIAXXXX:secret@bucket/a", "must not carry credentials"),
        ("s3://Bucket/a", "not a valid bucket name"),
        ("s3://ab/a", "not a valid bucket name"),
        ("s3://my_bucket/a", "not a valid bucket name"),  # S3 has no '_' in names; GCS does
        ("gs://-bucket/a", "not a valid bucket name"),
        ("file://server/share/a", "local absolute path"),
        ("s3://bucket/a//b", "'.', '..' or empty"),
        ("s3://bucket/../b", "'.', '..' or empty"),
    ],
)
def test_parse_url_refuses(text: str, says: str) -> None:
    with pytest.raises(UrlError, match=says.replace("?", r"\?").replace("(", r"\(")):
        parse_url(text)


def test_a_refused_url_with_credentials_does_not_quote_them() -> None:
    with pytest.raises(UrlError) as caught:
        parse_url("gs://user:hunter2-password@bucket/x")
    assert "hunter2" not in str(caught.value)


def test_url_forms() -> None:
    url = parse_url("s3://b-1/out/answers/")
    assert url.fs_path == "b-1/out/answers"
    assert str(url.child("a/b.md")) == "s3://b-1/out/answers/a/b.md"
    assert str(parse_url("s3://b-1").child("x.md")) == "s3://b-1/x.md"
    assert str(parse_url("s3://b-1/x.jsonl").with_suffix_added(".dead.jsonl")) == (
        "s3://b-1/x.jsonl.dead.jsonl"
    )
    assert parse_url("file:///srv/x").fs_path == "/srv/x"
    assert storage.is_url("s3://b/x") and storage.is_url("ftp://x/y")
    assert not storage.is_url("data/*.txt") and not storage.is_url("C:/data/x")


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gcsfs" else real(name)
    )
    assert storage.missing_extra("gs") == "pip install 'batchrun[gcs]'"
    assert storage.missing_extra("file") is None
    with pytest.raises(StorageError, match=r"gs:// URLs need the gcs extra: pip install"):
        storage.storage("gs")


# ---------------------------------------------------------------------------------------
# Operations, on the fake GCS


def test_find_lists_only_matching_objects_with_their_versions(gcs: FakeGCS) -> None:
    gcs.pipe(
        {
            "bkt/docs/a.txt": b"a",
            "bkt/docs/b.md": b"b",
            "bkt/docs/sub/c.txt": b"cc",
            "bkt/docs/draft-d.txt": b"d",
            "bkt/other/e.txt": b"e",
        }
    )
    store = storage.storage("gs")
    root = Url("gs", "bkt", "")
    flat = store.find(root, "docs/*.txt", ["**/draft-*"])
    assert [s.key for s in flat] == ["docs/a.txt"]
    deep = store.find(root, "docs/**/*.txt")
    assert [s.key for s in deep] == ["docs/a.txt", "docs/draft-d.txt", "docs/sub/c.txt"]
    assert [s.size for s in deep] == [1, 1, 2]
    assert all(len(s.version) == 32 for s in deep)  # the md5 etag
    assert str(deep[2].url) == "gs://bkt/docs/sub/c.txt"
    assert gcs.reads == 0


def test_a_version_changes_with_the_content(gcs: FakeGCS) -> None:
    store = storage.storage("gs")
    url = Url("gs", "bkt", "a.txt")
    store.put({url: b"one"})
    before = store.stat(url)
    store.put({url: b"two"})
    after = store.stat(url)
    assert before is not None and after is not None
    assert before.size == after.size and before.version != after.version


def test_read_fetch_stat_and_delete(gcs: FakeGCS, tmp_path: Path) -> None:
    store = storage.storage("gs")
    url, missing = Url("gs", "bkt", "x/y.bin"), Url("gs", "bkt", "x/nope")
    store.put({url: b"\x00\x01"})
    assert store.read(url) == b"\x00\x01"
    assert store.fetch(missing) is None and store.stat(missing) is None
    with pytest.raises(StorageError, match=r"gs://bkt/x/nope: no such object"):
        store.read(missing)
    assert store.download(url, tmp_path / "copy") and (tmp_path / "copy").read_bytes() == b"\0\1"
    assert not store.download(missing, tmp_path / "none") and not (tmp_path / "none").exists()
    (tmp_path / "up").write_bytes(b"uploaded")
    store.upload(tmp_path / "up", Url("gs", "bkt", "x/up"))
    assert store.any_under(Url("gs", "bkt", "x/")) and not store.any_under(Url("gs", "bkt", "q/"))
    store.delete([url, missing])
    assert store.stat(url) is None


def test_file_urls_go_through_the_local_filesystem(tmp_path: Path) -> None:
    (tmp_path / "d" / "s").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("aa")
    (tmp_path / "d" / "s" / "b.txt").write_text("b")
    root = parse_url("file:///")
    store = storage.storage("file")
    pattern = tmp_path.as_posix().lstrip("/") + "/d/**/*.txt"
    found = store.find(root, pattern)
    assert [Path("/" + s.key) for s in found] == [tmp_path / "d/a.txt", tmp_path / "d/s/b.txt"]
    assert found[0].size == 2 and found[0].version
    assert store.read(found[1].url) == b"b"


# ---------------------------------------------------------------------------------------
# S3, through the real s3fs/botocore stack against moto's server


def test_s3_find_and_stat_give_the_etag(s3_bucket: Bucket) -> None:
    client = s3_client()
    client.put_object(Bucket=s3_bucket.name, Key="in/a.txt", Body=b"hello")
    client.put_object(Bucket=s3_bucket.name, Key="in/folder/", Body=b"")  # a console's marker
    store = storage.storage("s3")
    found = store.find(Url("s3", s3_bucket.name, ""), "in/**")
    etag = client.head_object(Bucket=s3_bucket.name, Key="in/a.txt")["ETag"].strip('"')
    assert [(s.key, s.size, s.version) for s in found] == [("in/a.txt", 5, etag)]
    assert store.stat(found[0].url) == found[0]


def test_s3_a_missing_bucket_is_a_clear_error(s3_bucket: Bucket) -> None:
    store = storage.storage("s3")
    with pytest.raises(StorageError, match=r"^s3://no-such-bucket-here/: cannot list"):
        store.find(Url("s3", "no-such-bucket-here", ""), "*.txt")


def test_s3_without_credentials_says_where_they_come_from(
    s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError) as caught:
        storage.storage("s3").stat(Url("s3", s3_bucket.name, "a.txt"))
    assert "credentials" in str(caught.value) and "AWS_" in str(caught.value)
