"""Plain records passed between layers: what state knows of a request, and what sinks get.

This module sits at the bottom of the dependency graph: it imports nothing from batchrun.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Lifecycle of one request (one custom_id) in a job's state:
#   pending   known, never submitted
#   in_flight in a batch that has not been collected yet
#   retry     its last attempt ended for a retryable reason; will be resubmitted
#   canceled  its batch was cancelled by `batchrun cancel`; resubmitted by the next plain run
#   succeeded final: has a result in the sink
#   dead      final: a dead letter (non-retryable error, or attempts exhausted)
RequestStatus = Literal["pending", "in_flight", "retry", "canceled", "succeeded", "dead"]

# The status vocabulary: the one home of which statuses mean what.
RETRYABLE: tuple[RequestStatus, ...] = ("pending", "retry")  # submitted by any pass
SUBMITTABLE: tuple[RequestStatus, ...] = (*RETRYABLE, "canceled")  # by a plain run or a plan
WAITING: tuple[RequestStatus, ...] = (*RETRYABLE, "in_flight")  # a run is not finished
FINAL: tuple[RequestStatus, ...] = ("succeeded", "dead")
# The order in which counts are shown.
DISPLAY_ORDER: tuple[RequestStatus, ...] = (
    "succeeded",
    "in_flight",
    "pending",
    "retry",
    "canceled",
    "dead",
)

# What the API says a request ended as (api-contract: result types).
ResultType = Literal["succeeded", "errored", "canceled", "expired"]


@dataclass(frozen=True)
class RequestState:
    """What the job's state knows of one custom_id."""

    custom_id: str
    input_key: str
    status: RequestStatus
    attempts: int  # submissions so far


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What collect needs of one request of a batch. `current`: whether the request is still
    one the job wants (False: the job was edited since); None when not read."""

    custom_id: str
    input_key: str
    input_path: str | None
    attempts: int
    current: bool | None = None


@dataclass(frozen=True)
class ResultRecord:
    """The current successful result of one input, as every sink receives it."""

    input_key: str
    input_path: str | None  # the input file relative to the job folder (glob inputs only)
    custom_id: str
    text: str  # the answer: the message's text blocks joined
    message: Mapping[str, Any]  # the full API message
    usage: Mapping[str, Any]
    cost_usd: float | None  # None when the model's price is unknown
    batch_id: str
    model: str
    spec_hash: str
    attempts: int
    collected_at: str  # RFC 3339, UTC

    outcome: Literal["succeeded"] = "succeeded"
    # With an output schema: the answer parsed and validated (a JSON object); else None.
    data: Any = None
    # With `output.include`: the named fields of the input, by name; else None.
    include: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A request that failed for good: written beside the sink, never silently dropped."""

    input_key: str
    input_path: str | None
    custom_id: str
    outcome: ResultType  # errored | expired | canceled
    error_type: str | None  # e.g. invalid_request_error; None for expired/canceled
    error_message: str | None  # the API's message, verbatim
    attempts: int
    batch_id: str | None
    spec_hash: str
    at: str  # RFC 3339, UTC
