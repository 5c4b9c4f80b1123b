"""What collect adds to a succeeded answer: with an output schema, the answer parsed and
validated; with `output.include`, the input's named fields (executor/included.py).

A succeeded result becomes the parsed object (`Verdict.data`), or a reason it cannot:
`refusal` (the model declined: `stop_reason: refusal`) or `invalid_output` (cut at
max_tokens or at a stop sequence, not JSON, or JSON the schema rejects), each with a message
that says why and what to do. Collect turns a failed verdict into a dead letter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jsonschema
import orjson

from runner.executor.included import included
from runner.executor.schema_check import compile_check
from runner.spec import JobSpec

REFUSAL = "refusal"
INVALID_OUTPUT = "invalid_output"
ERRORS_SHOWN = 3  # schema violations named in one message


@dataclass(frozen=True)
class Verdict:
    """The parsed answer and the included fields, or the error type and message of the
    dead letter the answer becomes instead."""

    data: Any = None
    error_type: str | None = None
    message: str | None = None
    include: Mapping[str, Any] | None = None


def read(job: JobSpec, message: Mapping[str, Any], key: str, path: str | None) -> Verdict:
    """The verdict on one succeeded message of `job` for the input `key` (file `path`)."""
    include = included(job, key, path)
    if job.output_schema is None:
        return _PLAIN if include is None else Verdict(include=include)
    verdict = checker(job).check(message)
    return replace(verdict, include=include) if include is not None else verdict


_PLAIN = Verdict()  # a free-text answer of a job without include: most results of most jobs


class AnswerCheck:
    """Parses and validates the answers of one job (build once per job: see `checker`)."""

    def __init__(self, job: JobSpec) -> None:
        assert job.output_schema is not None
        self.job = job
        cls = jsonschema.validators.validator_for(
            job.output_schema, jsonschema.Draft202012Validator
        )
        self._validator = cls(job.output_schema, format_checker=cls.FORMAT_CHECKER)
        # Says yes in microseconds; a no (or None: a schema it cannot compile) asks jsonschema.
        self._fast = compile_check(job.output_schema, cls.FORMAT_CHECKER.conforms)

    def check(self, message: Mapping[str, Any]) -> Verdict:
        """The verdict on one succeeded message."""
        stop = message.get("stop_reason")
        if stop == "refusal":
            return Verdict(error_type=REFUSAL, message=_refused(message))
        text = "".join(
            str(b.get("text", ""))
            for b in message.get("content") or ()
            if isinstance(b, Mapping) and b.get("type") == "text"
        )
        if stop == "max_tokens":
            return self._invalid(
                f"the answer was cut at max_tokens={self.job.max_tokens} before its JSON was "
                "complete: raise max_tokens"
            )
        try:
            data = _DECODER.decode(text)
            orjson.dumps(data)  # integers past 64 bits cannot be stored or compared
        except (ValueError, TypeError) as exc:
            return self._invalid(self._not_json(stop, message, exc))
        if self._fast is not None and self._fast(data):
            return Verdict(data=data)
        problems = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if problems:
            shown = "; ".join(_violation(e) for e in problems[:ERRORS_SHOWN])
            more = (
                f" (and {len(problems) - ERRORS_SHOWN} more)"
                if len(problems) > ERRORS_SHOWN
                else ""
            )
            return self._invalid(
                f"the answer does not match the output schema: {shown}{more}: re-run the "
                "input, or check the schema and prompt agree"
            )
        return Verdict(data=data)

    def _invalid(self, message: str) -> Verdict:
        return Verdict(error_type=INVALID_OUTPUT, message=message)

    def _not_json(self, stop: Any, message: Mapping[str, Any], exc: Exception) -> str:
        if stop == "stop_sequence":
            seq = message.get("stop_sequence")
            return (
                f"the answer stopped at the stop sequence {seq!r} before its JSON was "
                "complete: remove it from params.stop_sequences"
            )
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return (
            f"the answer is not JSON ({why}): structured outputs should prevent this; check "
            "that the request carries output_config.format (batchrun compile shows it)"
        )


def _refused(message: Mapping[str, Any]) -> str:
    details = message.get("stop_details")
    details = details if isinstance(details, Mapping) else {}
    category, explanation = details.get("category"), details.get("explanation")
    said = f" ({category})" if category else ""
    said += f": {explanation}" if explanation else ""
    return (
        f"the model refused to answer{said}: rephrase the prompt, or leave this input out "
        "(a refused answer is not retried)"
    )


def _violation(err: jsonschema.ValidationError) -> str:
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
    said = err.message if len(err.message) <= 200 else err.message[:197] + "..."
    return f"{path}: {said}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every answer (json.loads with options builds a new one per call). The
# stdlib rather than orjson: it keeps integers past 64 bits, which the check below refuses
# with a clear message instead of a parse error.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


_CHECKS: dict[str, AnswerCheck] = {}


def checker(job: JobSpec) -> AnswerCheck:
    """The job's `AnswerCheck`, built once: `spec_hash` covers the schema and max_tokens."""
    found = _CHECKS.get(job.spec_hash)
    if found is None:
        if len(_CHECKS) > 16:
            _CHECKS.clear()
        found = _CHECKS[job.spec_hash] = AnswerCheck(job)
    return found
