"""The models `validate` knows: ids and dated aliases, each model's `max_tokens` cap in a
batch with and without the 300k-output beta, and which models are retired.

Figures from the API's model tables as of the price table's date (`batchrun plan` prints it).
Kept apart from runner/emulator/catalog.py on purpose: the emulator is an independent check
on the runner's own figures. A model newer than this table is allowed with
`allow_unknown_model: true` in the job.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass

from runner.limits import OUTPUT_300K_BETA

OUTPUT_300K_CAP = 300_000  # max_tokens in a batch with the beta, on the models it lifts
_DATE_SUFFIX = re.compile(r"-(\d{8}|latest)$")


@dataclass(frozen=True)
class Model:
    """One model: its id, its output cap, whether the 300k beta lifts it, whether retired."""

    id: str
    max_tokens: int
    output_300k: bool
    retired: bool = False

    def cap(self, betas: Collection[str]) -> int:
        """The `max_tokens` ceiling of a batch request with these betas."""
        if self.output_300k and OUTPUT_300K_BETA in betas:
            return OUTPUT_300K_CAP
        return self.max_tokens


MODELS: tuple[Model, ...] = (
    Model("claude-fable-5-2", 128_000, False),
    Model("claude-mythos-5-2", 128_000, False),
    Model("claude-haiku-5-5", 128_000, False),
    Model("claude-sonnet-5-5", 128_000, True),
    Model("claude-fable-5-1", 128_000, False),
    Model("claude-opus-5-5", 128_000, True),
    Model("claude-mythos-5-1", 128_000, False),
    Model("claude-sonnet-5", 128_000, True),
    Model("claude-fable-5", 128_000, False),
    Model("claude-mythos-5", 128_000, False),
    Model("claude-opus-5", 128_000, True),
    Model("claude-opus-4-8", 128_000, False),
    Model("claude-opus-4-7", 128_000, True),
    Model("claude-mythos-preview", 128_000, False),
    Model("claude-opus-4-6", 128_000, True),
    Model("claude-sonnet-4-6", 128_000, True),
    Model("claude-haiku-4-5", 64_000, False),
    Model("claude-opus-4-5", 64_000, False),
    Model("claude-sonnet-4-5", 64_000, False),
    Model("claude-opus-4-1", 32_000, False, retired=True),
    Model("claude-opus-4-0", 32_000, False, retired=True),
    Model("claude-opus-4", 32_000, False, retired=True),
    # Older models users still copy from examples on the web: known, so that validate says
    # "retired" rather than "unknown" (with a misleading look-alike).
    Model("claude-sonnet-4-0", 64_000, False, retired=True),
    Model("claude-sonnet-4", 64_000, False, retired=True),
    Model("claude-3-7-sonnet", 64_000, False, retired=True),
    Model("claude-3-5-sonnet", 8_192, False, retired=True),
    Model("claude-3-5-haiku", 8_192, False, retired=True),
    Model("claude-3-opus", 4_096, False, retired=True),
    Model("claude-3-sonnet", 4_096, False, retired=True),
    Model("claude-3-haiku", 4_096, False, retired=True),
)
_BY_ID = {m.id: m for m in MODELS}


def canonical(model: str) -> str:
    """`claude-haiku-4-5-20251001` -> `claude-haiku-4-5`: a dated alias is its model."""
    return _DATE_SUFFIX.sub("", model)


def find(model: str) -> Model | None:
    """The model for an id or a dated alias; None when this table does not know it."""
    return _BY_ID.get(canonical(model))


def closest(model: str) -> str | None:
    """The known id a misspelt `model` most likely meant, if any is close: capitals, dots
    for dashes and a missing `claude-` are forgiven first (`Sonnet-4.6` -> claude-sonnet-4-6)."""
    tidy = canonical(model.strip().lower().replace(".", "-").replace("_", "-"))
    for guess in (tidy, f"claude-{tidy}"):
        if guess in _BY_ID:
            return guess
    close = difflib.get_close_matches(tidy, list(_BY_ID), n=1, cutoff=0.75)
    return close[0] if close else None


def current_ids() -> list[str]:
    """Every known id that is not retired, in the table's order (newest first)."""
    return [m.id for m in MODELS if not m.retired]


def lifted_by_beta() -> list[str]:
    """The models whose cap the 300k-output beta lifts."""
    return [m.id for m in MODELS if m.output_300k]
