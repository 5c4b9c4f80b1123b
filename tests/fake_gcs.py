"""A fake GCS for the tests: fsspec's in-memory filesystem, with the `etag` a GCS listing
carries and a store of its own (the memory filesystem's is shared by every instance)."""

from __future__ import annotations

import hashlib
from typing import Any

from fsspec.implementations.memory import MemoryFileSystem


class FakeGCS(MemoryFileSystem):  # type: ignore[misc]  # fsspec has no types
    protocol = ("gs", "gcs")
    cachable = False  # a new filesystem, with its own store, on every call

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[str, Any] = {}
        self.pseudo_dirs = [""]
        self.reads = 0  # whole-object GETs and downloads: what a run read
        self.writes = 0  # PUTs and uploads

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        found = super().ls(path, detail=detail, **kwargs)
        return [self._tagged(e) for e in found] if detail else found

    def find(self, path: str, *args: Any, detail: bool = False, **kwargs: Any) -> Any:
        found = super().find(path, *args, detail=detail, **kwargs)
        return {k: self._tagged(v) for k, v in found.items()} if detail else found

    def info(self, path: str, **kwargs: Any) -> Any:
        return self._tagged(super().info(path, **kwargs))

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> Any:
        self.reads += 1
        return super().cat_file(path, start, end, **kwargs)

    def get_file(self, rpath: str, lpath: str, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return super().get_file(rpath, lpath, *args, **kwargs)

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return super().pipe_file(path, value, *args, **kwargs)

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return super().put_file(lpath, rpath, *args, **kwargs)

    def _tagged(self, entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("type") == "file":
            data = self.store[self._strip_protocol(entry["name"])].getvalue()
            entry = {**entry, "etag": hashlib.md5(data).hexdigest()}  # as GCS does
        return entry
