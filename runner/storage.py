"""Object storage: the one module that reaches `s3://`, `gs://` and `file://` URLs.

Inputs and sinks go through it and nothing else imports fsspec, so a test replaces exactly
this seam (`use_filesystem`). The filesystems are fsspec's: `s3fs` and `gcsfs` come with
the `s3` and `gcs` extras (`missing_extra` names the one a URL needs), `file://` is built in.

Credentials and endpoints are never read or passed here: botocore finds them the standard
way (the AWS_* variables including AWS_ENDPOINT_URL, AWS_PROFILE and its files, instance and
task roles), gcsfs through Google's application default credentials. A URL that carries
credentials is refused (`parse_url`), so none can reach a log, the state or an output.

Every failure of a store (missing bucket, access denied, no credentials, unreachable
endpoint) becomes a `StorageError` naming the URL; messages quote the store's own error text,
which names the operation and the object, never a secret.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import posixpath
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner import log
from runner.errors import BatchrunError
from runner.globs import _literal_prefix, glob_regex


class StorageError(BatchrunError):
    """A store refused or failed an operation (or the scheme's extra is not installed)."""


class UrlError(ValueError):
    """A URL batchrun cannot use; the message says why and what to write instead."""


@dataclass(frozen=True)
class Scheme:
    """What a URL scheme needs: the fsspec protocol and the package (and extra) behind it."""

    protocol: str
    module: str | None  # the package implementing the protocol; None: part of fsspec
    extra: str | None  # the batchrun extra that installs `module`


SCHEMES: Mapping[str, Scheme] = {
    "s3": Scheme("s3", "s3fs", "s3"),
    "gs": Scheme("gcs", "gcsfs", "gcs"),
    "file": Scheme("file", None, None),
}
# Bucket names as the stores define them (lower case; S3 at most 63 characters, GCS up to
# 222 with dots). An invalid one is refused here rather than by a store's error later.
_BUCKET = {
    "s3": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    "gs": re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"),
}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://(.*)\Z", re.DOTALL)
# The errors of the stores' client libraries that are not OSErrors (s3fs maps most S3
# errors to OSError subclasses, but not missing credentials or an unreachable endpoint).
# Looked up only in modules already imported: a store that was never used raised nothing.
_CLIENT_ERRORS = (
    ("botocore.exceptions", "BotoCoreError"),
    ("botocore.exceptions", "ClientError"),
    ("google.auth.exceptions", "GoogleAuthError"),
    ("aiohttp", "ClientError"),
)
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_CREDENTIALS_HINT = {
    "s3": "credentials and endpoint come from the AWS_* variables, a profile or a role",
    "gs": "credentials come from Google's application default credentials",
}


@dataclass(frozen=True)
class Url:
    """An object (or a prefix) in a store. `key` has no leading '/'; "" is the bucket root.
    For `file://` the bucket is "" and the key the absolute path without its first '/'."""

    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def fs_path(self) -> str:
        """The path fsspec takes: `bucket/key`, or `/path` for file://."""
        if self.scheme == "file":
            return "/" + self.key
        return f"{self.bucket}/{self.key}".rstrip("/")

    @property
    def name(self) -> str:
        return posixpath.basename(self.key.rstrip("/"))

    def child(self, relative: str) -> Url:
        """The URL `relative` (a POSIX path) below this prefix."""
        base = self.key.rstrip("/")
        return Url(self.scheme, self.bucket, f"{base}/{relative}" if base else relative)

    def with_suffix_added(self, suffix: str) -> Url:
        """`s3://b/out/x.jsonl` -> `s3://b/out/x.jsonl<suffix>` (a sidecar beside it)."""
        return Url(self.scheme, self.bucket, self.key.rstrip("/") + suffix)


def is_url(text: str) -> bool:
    """Whether `text` is written as a URL (`scheme://...`), supported or not."""
    return _URL.match(text) is not None


def parse_url(text: str) -> Url:
    """`s3://bucket/key`, `gs://bucket/key` or `file:///absolute/path` -> `Url`.

    Raises `UrlError` for another scheme, credentials in the URL, an invalid bucket name,
    or '.', '..' or empty path components. A '?' is part of the key (a glob's wildcard).
    """
    match = _URL.match(text)
    if match is None:
        raise UrlError(f"{text!r} is not a URL")
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in SCHEMES:
        raise UrlError(
            f"unsupported URL scheme {scheme + '://'!r}: inputs and outputs may be local "
            "paths or s3://, gs:// and file:// URLs"
        )
    bucket, _, key = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise UrlError(
            "a URL must not carry credentials or a port: "
            + _CREDENTIALS_HINT.get(scheme, "set them in the environment")
        )
    if scheme == "file":
        if bucket not in ("", "localhost"):
            raise UrlError("a file:// URL names a local absolute path: file:///path/to/it")
        bucket = ""
    elif not _BUCKET[scheme].match(bucket):
        raise UrlError(
            f"{bucket!r} is not a valid bucket name: 3 to 63 lower-case letters, digits, "
            "'.' and '-', starting and ending with a letter or digit"
        )
    if any(part in ("", ".", "..") for part in key.rstrip("/").split("/")[bool(not key) :]):
        raise UrlError("a URL's path cannot have '.', '..' or empty ('//') components")
    return Url(scheme, bucket, key)


def missing_extra(scheme: str) -> str | None:
    """The install command for the extra a scheme needs, or None when it is installed."""
    needs = SCHEMES[scheme]
    if needs.module is None or importlib.util.find_spec(needs.module) is not None:
        return None
    return f"pip install 'batchrun[{needs.extra}]'"


@dataclass(frozen=True)
class ObjectStat:
    """An object's identity without its content: its URL, size, and a version that changes
    whenever the content does (the ETag for S3; etag or generation for GCS; for file:// the
    modification time). Incremental runs compare (key, size, version) instead of reading."""

    url: Url
    size: int
    version: str

    @property
    def key(self) -> str:
        return self.url.key


# ---------------------------------------------------------------------------------------
# The filesystems, and the one seam tests replace


_overrides: dict[str, Any] = {}


@contextlib.contextmanager
def use_filesystem(scheme: str, fs: Any) -> Iterator[None]:
    """Serve `scheme` from `fs` (an fsspec filesystem) inside the block: for tests."""
    previous = _overrides.get(scheme)
    _overrides[scheme] = fs
    try:
        yield
    finally:
        if previous is None:
            _overrides.pop(scheme, None)
        else:
            _overrides[scheme] = previous


def storage(scheme: str) -> Storage:
    """The store behind a scheme. Each call builds a fresh client (no listing cache), so an
    object changed since the last call is seen as it is now."""
    if scheme in _overrides:
        return Storage(scheme, _overrides[scheme])
    needs = SCHEMES[scheme]
    install = missing_extra(scheme)
    if install is not None:
        raise StorageError(f"{scheme}:// URLs need the {needs.extra} extra: {install}")
    import fsspec  # here: a job without URLs never pays the ~0.1 s import

    for name in _SECRET_VARIABLES:  # never read here, but masked should a message quote one
        log.add_secret(os.environ.get(name))
    fs = fsspec.filesystem(needs.protocol, skip_instance_cache=True, use_listings_cache=False)
    return Storage(scheme, fs)


class Storage:
    """One store's operations. Each failure of the store raises `StorageError`."""

    def __init__(self, scheme: str, fs: Any) -> None:
        self.scheme = scheme
        self._fs = fs

    def find(self, root: Url, pattern: str, exclude: Sequence[str] = ()) -> list[ObjectStat]:
        """The objects below `root` whose key relative to it matches the glob `pattern`
        and no `exclude` pattern, sorted by key. Only the pattern's literal prefix is
        listed (one listing, paged by the store; no object is read)."""
        include = glob_regex(pattern)
        excludes = [glob_regex(p) for p in exclude]
        prefix = _literal_prefix(pattern)
        top = root.child(prefix) if prefix else root
        # Without `**` nothing deeper than the pattern's own depth can match.
        depth = None if "**" in pattern else pattern.count("/") - prefix.count("/") + (not prefix)
        with self._failures(top, "list the objects"):
            listed = self._fs.find(top.fs_path, maxdepth=depth, detail=True)
            if not listed and root.bucket and not self._fs.exists(root.bucket):
                missing = f"no bucket {root.bucket!r}, or these credentials cannot see it"
                raise FileNotFoundError(missing)
        found: list[ObjectStat] = []
        for name, info in listed.items():
            relative = self._key(name)[len(root.key.rstrip("/")) + bool(root.key) :]
            if info.get("type") != "file" or relative.endswith("/"):
                continue  # a folder, or the zero-byte marker a console leaves for one
            if include.match(relative) and not any(x.match(relative) for x in excludes):
                found.append(self._stat(root.child(relative), info))
        return sorted(found, key=lambda s: s.key)

    def stat(self, url: Url) -> ObjectStat | None:
        """The object's size and version, or None when there is no such object."""
        with self._failures(url, "look up the object"):
            try:
                info = self._fs.info(url.fs_path)
            except FileNotFoundError:
                return None
        return self._stat(url, info) if info.get("type") == "file" else None

    def read(self, url: Url) -> bytes:
        """The whole object (one GET); a missing one is an error."""
        data = self.fetch(url)
        if data is None:
            raise StorageError(f"{url}: no such object: check the bucket and the key")
        return data

    def fetch(self, url: Url) -> bytes | None:
        """The whole object, or None when there is no such object (one GET either way)."""
        with self._failures(url, "read the object"):
            try:
                data: bytes = self._fs.cat_file(url.fs_path)
            except FileNotFoundError:
                return None
        return data

    @contextlib.contextmanager
    def open(self, url: Url) -> Iterator[IO[bytes]]:
        """The object as a binary stream, read in ranges: memory stays flat however large
        it is. A failure while reading is reported like one while opening."""
        with self._failures(url, "read the object"), self._fs.open(url.fs_path, "rb") as f:
            yield f

    def download(self, url: Url, local: Path) -> bool:
        """Copy the object to the local file `local`; False (and nothing written) when
        there is no such object."""
        with self._failures(url, "download the object"):
            try:
                self._fs.get_file(url.fs_path, str(local))
            except FileNotFoundError:
                local.unlink(missing_ok=True)
                return False
        return True

    def upload(self, local: Path, url: Url) -> None:
        """Replace the object with the local file's bytes, whole: a reader sees the old
        object or the new one, never a mix (a single or multipart PUT commits at its end)."""
        with self._failures(url, "write the object"):
            self._fs.put_file(str(local), url.fs_path)

    def put(self, objects: Mapping[Url, bytes]) -> None:
        """Replace each object with its bytes, several at once (each one whole)."""
        if not objects:
            return
        first = next(iter(objects))
        with self._failures(first, "write the objects"):
            self._fs.pipe({u.fs_path: data for u, data in objects.items()})

    def delete(self, urls: Sequence[Url]) -> None:
        """Remove the objects; one that is not there is no error."""
        for url in urls:
            with self._failures(url, "delete the object"), contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(url.fs_path)

    def any_under(self, prefix: Url) -> bool:
        """Whether any object exists under `prefix` (a folder-like prefix)."""
        with self._failures(prefix, "list the objects"):
            try:
                return bool(self._fs.ls(prefix.fs_path, detail=False))
            except FileNotFoundError:
                return False

    def _key(self, name: str) -> str:
        """fsspec's `bucket/key` (or `/path`) -> the key."""
        path = name.lstrip("/")
        return path if self.scheme == "file" else path.partition("/")[2]

    def _stat(self, url: Url, info: Mapping[str, Any]) -> ObjectStat:
        return ObjectStat(url, int(info.get("size") or 0), _version(info))

    @contextlib.contextmanager
    def _failures(self, url: Url, doing: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except FileNotFoundError as e:
            raise StorageError(f"{url}: cannot {doing}: not found ({_reason(e)})") from None
        except PermissionError as e:
            raise StorageError(
                f"{url}: cannot {doing}: access denied ({_reason(e)}); "
                f"{_CREDENTIALS_HINT.get(self.scheme, 'check the permissions')}"
            ) from None
        except Exception as e:
            if not isinstance(e, (OSError, *_client_errors())):
                raise  # not the store's failure: a bug, reported as one
            hint = _CREDENTIALS_HINT.get(self.scheme)
            raise StorageError(
                f"{url}: cannot {doing}: {_reason(e)}" + (f" ({hint})" if hint else "")
            ) from None


def _client_errors() -> tuple[type[Exception], ...]:
    found: list[type[Exception]] = []
    for module, name in _CLIENT_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(getattr(loaded, name, None), type):
            found.append(getattr(loaded, name))
    return tuple(found)


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _version(info: Mapping[str, Any]) -> str:
    """What changes whenever the content does, from a listing or a HEAD."""
    for field in ("ETag", "etag", "generation", "md5Hash", "mtime"):
        value = info.get(field)
        if value not in (None, ""):
            return str(value).strip('"')
    return ""
