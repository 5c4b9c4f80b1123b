"""What validate checks of the URLs in a job (`input.glob`, `input.jsonl`, `input.csv`,
`output.path`) and of a postgres output: the URL's form, the extra its scheme needs, and
what each kind of input or sink can take. Nothing here reaches a store or a database:
validate runs where no credentials are (a pull request's checks, an editor).

The checks return `Finding`s (a JSON path, a message, a severity); `checks` places them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from runner import storage
from runner.storage import Url, UrlError

Role = Literal["glob", "jsonl", "csv", "output"]

# PostgreSQL cuts names at 63 bytes, and the dead-letter table adds 13 characters to it.
POSTGRES_MAX_TABLE = 63 - len("_dead_letters")
_WILDCARDS = frozenset("*?[")


@dataclass(frozen=True)
class Finding:
    path: str  # the JSON path of the value at fault
    message: str
    severity: str = "error"


def url_findings(path: str, text: str, role: Role, sink: object = None) -> Iterator[Finding]:
    """What is wrong with the URL `text` at `path` for its role (and, for an output, its
    sink type `sink`); nothing when `text` is not written as a URL (a local path)."""
    if not storage.is_url(text):
        return
    try:
        url = storage.parse_url(text)
    except UrlError as e:
        yield Finding(path, str(e))
        return
    install = storage.missing_extra(url.scheme)
    if install is not None:
        extra = storage.SCHEMES[url.scheme].extra
        message = f"{url.scheme}:// URLs need the {extra} extra, not installed here: {install}"
        yield Finding(path, message)
    problem = _role_problem(url, role, sink)
    if problem:
        yield Finding(path, problem)


def _role_problem(url: Url, role: Role, sink: object) -> str | None:
    names_one = bool(url.key) and not url.key.endswith("/")
    if role == "glob" and not url.key:
        return "the URL names a bucket but no files: add a pattern, e.g. s3://bucket/docs/*.txt"
    if role in ("jsonl", "csv") and (not names_one or _WILDCARDS & set(url.key)):
        return (
            f"a {role} input is one object: name it (e.g. s3://bucket/answers.{role}); "
            "to read many files, use input.glob"
        )
    if role == "output" and url.scheme != "file":
        if sink == "sqlite":
            return (
                "a sqlite database is a local file: give a local path, or write to a "
                "PostgreSQL table with `type: postgres`"
            )
        if sink == "jsonl" and not names_one:
            return "a jsonl output is one object: name it, e.g. s3://bucket/out/answers.jsonl"
    return None


def postgres_findings(dsn_env: object, table: object) -> Iterator[Finding]:
    """A postgres output's problems: the extra, the DSN's variable, the table name."""
    if importlib.util.find_spec("psycopg") is None:
        yield Finding(
            "$.output.type",
            "the postgres output needs the postgres extra, not installed here: "
            "pip install 'batchrun[postgres]'",
        )
    if isinstance(dsn_env, str) and dsn_env and not os.environ.get(dsn_env):
        message = f"{dsn_env} is not set here: `run` needs the results database's DSN in it"
        yield Finding("$.output.dsn_env", message, "warning")
    if isinstance(table, str) and len(table) > POSTGRES_MAX_TABLE:
        yield Finding(
            "$.output.table",
            f"a postgres table name is at most {POSTGRES_MAX_TABLE} characters: PostgreSQL "
            "names are at most 63 bytes, and the dead-letter table adds '_dead_letters'",
        )


def same_place(a: str, b: str) -> bool:
    """Whether two URLs name the same object (either one not a valid URL: no)."""
    try:
        return storage.parse_url(a) == storage.parse_url(b)
    except UrlError:
        return False
