"""Checks of `model` and `max_tokens` against the models batchrun knows: a misspelt model is
found at validate ("did you mean"), not after a plan that cannot price it, and a `max_tokens`
above the model's cap is found before every request of the job becomes a dead letter."""

from __future__ import annotations

from collections.abc import Iterator

from runner.errors import Diagnostic
from runner.limits import NORMAL_MAX_TOKENS, OUTPUT_300K_BETA
from runner.spec import models
from runner.spec.raw import RawJob

ALLOW_KEY = "allow_unknown_model"


def check_model(job: RawJob) -> Iterator[Diagnostic]:
    """The model is known (or explicitly allowed) and `max_tokens` is within its cap."""
    model = job.get("model", kind=str)
    if not model:
        return
    known = models.find(model)
    if known is None:
        if job.doc.get(ALLOW_KEY) is not True:
            yield job.at("$.model", _unknown(model))
        yield from _generic_cap(job)
        return
    if known.retired:
        message = (
            f"{model} is retired (or about to be): the API refuses a retired model's requests; "
            f"use a current model such as {_newest_like(known)}"
        )
        yield job.at("$.model", message, "warning")
    yield from _model_cap(job, known)


def _unknown(model: str) -> str:
    allow = (
        f"if it is a model newer than this batchrun, set `{ALLOW_KEY}: true` and give its "
        "prices under `pricing:`"
    )
    close = models.closest(model)
    if close is not None:
        return f"unknown model {model!r}: did you mean {close!r}? {allow}"
    return f"unknown model {model!r}: known models are {', '.join(models.current_ids())}; {allow}"


def _newest_like(model: models.Model) -> str:
    """The newest current model of the same line (haiku, sonnet, opus...)."""
    lines = ("haiku", "sonnet", "opus", "fable", "mythos")
    line = next((word for word in model.id.split("-") if word in lines), None)
    same = [m for m in models.current_ids() if line is not None and f"-{line}-" in m]
    return same[0] if same else models.current_ids()[0]


def _betas(job: RawJob) -> frozenset[str]:
    return frozenset(b for b in job.get("betas", kind=list) or () if isinstance(b, str))


def _model_cap(job: RawJob, model: models.Model) -> Iterator[Diagnostic]:
    max_tokens = job.get("max_tokens", kind=int)
    betas = _betas(job)
    cap = model.cap(betas)
    if max_tokens is None or max_tokens <= cap or max_tokens > models.OUTPUT_300K_CAP:
        return  # above 300,000 the schema's own maximum says so
    name = job.get("model", kind=str)
    over = f"max_tokens {max_tokens:,} is above {name}'s cap of {cap:,} output tokens"
    beta = OUTPUT_300K_BETA
    if model.output_300k and max_tokens <= models.OUTPUT_300K_CAP:
        fix = f"add `betas: [{beta}]` (batches only: up to 300,000) or lower max_tokens"
    elif beta in betas:
        lifted = ", ".join(models.lifted_by_beta())
        fix = (
            f"the {beta} beta does not apply to {name} (it lifts the cap to 300,000 on "
            f"{lifted}): lower max_tokens to at most {cap:,}, or use one of those models"
        )
    else:
        fix = f"lower max_tokens to at most {cap:,}"
    yield job.at("$.max_tokens", f"{over}: {fix}")


def _generic_cap(job: RawJob) -> Iterator[Diagnostic]:
    """An allowed unknown model: only the rule every current model follows."""
    max_tokens = job.get("max_tokens", kind=int)
    beta = OUTPUT_300K_BETA
    if max_tokens is not None and max_tokens > NORMAL_MAX_TOKENS and beta not in _betas(job):
        message = (
            f"max_tokens above {NORMAL_MAX_TOKENS} needs the {beta} beta: add `betas: [{beta}]`"
        )
        yield job.at("$.max_tokens", message)
