"""`batchrun export`: a job's current results as JSON Lines or CSV, whatever its sink.

Reads any iterable of `ResultRecord` (the store's current results) and streams it out one
record at a time, so memory stays flat whatever the job size.

- JSONL: one object per line with every field of the record (`record_to_json`), the same
  line the JSONL sink writes; `record_from_json` reads a line back into an equal record.
- CSV: a header row of `CSV_COLUMNS` (then the job's included fields and output schema
  properties, as in the SQLite sink), then one row per record; usage figures flattened as
  `usage.<field>`, the message left out (use JSONL for it). Empty cell = null. Fields with
  commas, quotes or newlines are quoted (RFC 4180, CRLF line ends), so `csv.reader` reads
  back exactly the strings written. A cell a spreadsheet would run as a formula (starting
  with `=`, `+`, `-`, `@`, a tab or a carriage return: an answer can say anything) gets a
  leading `'`, as OWASP's CSV-injection guidance recommends; `raw=True` (`--raw`) keeps
  cells exactly as they are.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, cast

import orjson

from runner.commands.wiring import state_dir, state_ref
from runner.errors import BatchrunError, ExitCode, SpecError
from runner.records import ResultRecord
from runner.sinks.columns import Column, csv_value, job_columns
from runner.spec import JobRef, JobSpec, load_job
from runner.store import Store

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")

# Usage figures get a column each; the path is the key path inside `usage`.
USAGE_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("input_tokens",),
    ("output_tokens",),
    ("cache_creation_input_tokens",),
    ("cache_read_input_tokens",),
    ("cache_creation", "ephemeral_5m_input_tokens"),
    ("cache_creation", "ephemeral_1h_input_tokens"),
    ("service_tier",),
)
CSV_COLUMNS: tuple[str, ...] = (
    "input_key",
    "input_path",
    "custom_id",
    "outcome",
    "text",
    "stop_reason",
    "model",
    *("usage." + ".".join(path) for path in USAGE_COLUMNS),
    "cost_usd",
    "batch_id",
    "spec_hash",
    "attempts",
    "collected_at",
)


def export(
    records: Iterable[ResultRecord],
    fmt: Format,
    out: IO[bytes] | IO[str],
    columns: Sequence[Column] = (),
    *,
    raw: bool = False,
) -> int:
    """Write `records` to `out` in `fmt`; return how many were written. CSV cells that
    look like formulas are neutralised unless `raw`.

    `out` may be binary (a file opened "wb", `sys.stdout.buffer`) or text; text streams
    should be opened with `newline=""` so CSV line ends are not translated. `out` is left
    open. `columns` (sinks/columns.py: included fields, output schema properties) follow
    `CSV_COLUMNS` in a CSV, as in the SQLite sink's table.
    """
    write = _writer(out)
    if fmt == "jsonl":
        return _export_jsonl(records, write)
    if fmt == "csv":
        return _export_csv(records, write, columns, raw)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")


def export_file(
    records: Iterable[ResultRecord],
    fmt: Format,
    path: Path,
    columns: Sequence[Column] = (),
    *,
    raw: bool = False,
) -> int:
    """`export` into the file `path`, atomically: a failed export leaves any old file whole.

    Written to a temp file beside `path`, fsynced, then renamed over it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.export-tmp")
    try:
        with tmp.open("wb") as out:
            count = export(records, fmt, out, columns, raw=raw)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _writer(out: IO[bytes] | IO[str]) -> Callable[[bytes], Any]:
    """One way to write bytes to either kind of stream."""
    if isinstance(out, io.TextIOBase):
        text_out = out
        return lambda data: text_out.write(data.decode("utf-8"))
    return cast("IO[bytes]", out).write


# ---------------------------------------------------------------------------------------
# JSONL


def record_to_json(record: ResultRecord) -> bytes:
    """One JSONL line (with its newline): every field of the record, in its declared order,
    byte for byte the line the JSONL sink writes."""
    return orjson.dumps(record, default=dict, option=orjson.OPT_APPEND_NEWLINE)


def record_from_json(line: bytes | str) -> ResultRecord:
    """The record a `record_to_json` line (or a JSONL sink line) holds."""
    body = orjson.loads(line)
    # A line written before a field was added lacks it: the field's default stands.
    fields = dataclasses.fields(ResultRecord)
    return ResultRecord(**{f.name: body[f.name] for f in fields if f.name in body})


def _export_jsonl(records: Iterable[ResultRecord], write: Callable[[bytes], Any]) -> int:
    count = 0
    for record in records:
        write(record_to_json(record))
        count += 1
    return count


# ---------------------------------------------------------------------------------------
# CSV


def csv_row(record: ResultRecord) -> list[str]:
    """A record as CSV cells, in `CSV_COLUMNS` order; None is the empty string."""
    message = record.message
    values: list[Any] = [
        record.input_key,
        record.input_path,
        record.custom_id,
        record.outcome,
        record.text,
        message.get("stop_reason") if isinstance(message, Mapping) else None,
        record.model,
        *(_dig(record.usage, path) for path in USAGE_COLUMNS),
        record.cost_usd,
        record.batch_id,
        record.spec_hash,
        record.attempts,
        record.collected_at,
    ]
    return [_cell(v) for v in values]


def _dig(mapping: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _cell(value: Any) -> str:
    """repr() of a float is the shortest text that reads back as the same float."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A cell no spreadsheet runs as a formula: a leading `'` before a formula's first
    character (the spreadsheet shows the text as it is)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _extra_cell(value: Any, raw: bool) -> str:
    """An included field's or output schema property's cell. A number (`rating: -1`) is
    data, not a formula: only text is neutralised."""
    cell = _cell(csv_value(value))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return cell if raw or number else neutralise(cell)


def _export_csv(
    records: Iterable[ResultRecord],
    write: Callable[[bytes], Any],
    columns: Sequence[Column],
    raw: bool = False,
) -> int:
    # csv writes text; one small buffer per row keeps memory flat and the output binary.
    buffer = io.StringIO()
    rows = csv.writer(buffer)
    rows.writerow([*CSV_COLUMNS, *(c.name for c in columns)])
    count = 0
    for record in records:
        row = csv_row(record)
        if not raw:
            row = [neutralise(cell) for cell in row]
        rows.writerow(row + [_extra_cell(c.value(record), raw) for c in columns])
        count += 1
        write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
    write(buffer.getvalue().encode("utf-8"))  # the header, when there were no records
    return count


def export_to(job: JobSpec, fmt: Format, out: Path, root: Path | None) -> int:
    """The job's current results written atomically to `out` (the Python API's export)."""
    columns = job_columns(job) if fmt == "csv" else ()
    store = _open_state(job, root)
    try:
        return export_file(store.iter_results(), fmt, out, columns)
    finally:
        store.close()


def _open_state(job: JobSpec | JobRef, root: Path | None) -> Store:
    where = state_dir(job, root)
    if not Store.exists(where):
        raise BatchrunError(f"{job.name}: no state in {where}: run the job first")
    return Store.open(where)


def _extra_columns(path: Path) -> tuple[Column, ...]:
    """The job's included-field and output-schema columns; none while its file has errors
    (`state_ref` has warned about them)."""
    try:
        return job_columns(load_job(path))
    except SpecError:
        return ()


def export_job(path: Path, fmt: str, out: Path | None, root: Path | None, raw: bool = False) -> int:
    """`batchrun export`: the job's current results from its state, whatever the sink, as
    JSONL or CSV, to a file (written atomically) or to stdout."""
    job = state_ref(path)
    columns = _extra_columns(path) if fmt == "csv" else ()
    store = _open_state(job, root)
    try:
        records = store.iter_results()
        kind: Format = "csv" if fmt == "csv" else "jsonl"
        if out is not None:
            count = export_file(records, kind, out, columns, raw=raw)
        else:
            count = export(records, kind, sys.stdout.buffer, columns, raw=raw)
            sys.stdout.buffer.flush()
    finally:
        store.close()
    print(f"{job.name}: exported {count} results", file=sys.stderr)
    return ExitCode.OK
