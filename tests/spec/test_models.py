"""runner.spec.models: the models validate knows, and their output caps."""

from __future__ import annotations

import pytest

from runner.limits import OUTPUT_300K_BETA
from runner.pricing import table
from runner.spec import models


def test_every_priced_model_is_known() -> None:
    """A model plan can price is one validate accepts (and the other way round, except
    the one model without a published price)."""
    priced = {i for row in table()["models"] for i in row["ids"]}
    known = {m.id for m in models.MODELS}
    current = {m.id for m in models.MODELS if not m.retired}
    assert priced <= known
    assert current - priced == {"claude-mythos-preview"}


@pytest.mark.parametrize(
    ("model", "betas", "cap"),
    [
        ("claude-haiku-4-5", (), 64_000),
        ("claude-haiku-4-5", (OUTPUT_300K_BETA,), 64_000),  # the beta does not apply
        ("claude-haiku-4-5-20251001", (), 64_000),  # a dated alias is its model
        ("claude-sonnet-4-6", (), 128_000),
        ("claude-sonnet-4-6", (OUTPUT_300K_BETA,), 300_000),
        ("claude-opus-4-8", (OUTPUT_300K_BETA,), 128_000),
        ("claude-opus-5-5", (OUTPUT_300K_BETA,), 300_000),
    ],
)
def test_caps_with_and_without_the_300k_beta(model: str, betas: tuple[str, ...], cap: int) -> None:
    found = models.find(model)
    assert found is not None and found.cap(betas) == cap


def test_a_misspelt_model_has_a_suggestion_and_a_stranger_none() -> None:
    assert models.closest("claude-sonet-4-6") == "claude-sonnet-4-6"
    assert models.closest("claude-haiku4-5") == "claude-haiku-4-5"
    assert models.closest("Sonnet-4.6") == "claude-sonnet-4-6"  # case, dots, no claude-
    assert models.closest("gpt-4o") is None
    assert models.find("claude-sonet-4-6") is None


def test_an_old_model_is_retired_not_unknown() -> None:
    old = models.find("claude-3-5-haiku-20241022")
    assert old is not None and old.retired and old.cap(()) == 8_192
