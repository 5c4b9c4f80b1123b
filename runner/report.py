"""What a user reads after a run and in `status`: counts, batches, dead letters, cost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runner.store import Store


def cost_report(store: Store) -> dict[str, Any]:
    """Tokens by category over every succeeded request, cache hit rate, dollars at batch
    prices and what the same work would have cost on the standard API."""
    t = store.usage_totals()
    prompt = t["input"] + t["cache_write_5m"] + t["cache_write_1h"] + t["cache_read"]
    known = t["priced"] == t["succeeded"]
    return {
        "tokens": {
            "input": int(t["input"]),
            "cache_write_5m": int(t["cache_write_5m"]),
            "cache_write_1h": int(t["cache_write_1h"]),
            "cache_read": int(t["cache_read"]),
            "output": int(t["output"]),
        },
        "cache_hit_rate": round(t["cache_read"] / prompt, 4) if prompt else 0.0,
        "cost_usd": round(t["cost_usd"], 6) if known else None,
        "standard_cost_usd": round(t["standard_cost_usd"], 6) if known else None,
        "saved_usd": round(t["standard_cost_usd"] - t["cost_usd"], 6) if known else None,
    }


def format_cost(cost: dict[str, Any]) -> list[str]:
    tok = cost["tokens"]
    lines = [
        "tokens: {input} input, {cache_write_5m} cache write 5m, {cache_write_1h} cache write "
        "1h, {cache_read} cache read, {output} output".format(**tok),
        f"cache hit rate: {cost['cache_hit_rate']:.1%}",
    ]
    if cost["cost_usd"] is None:
        lines.append("cost: unknown (no price for this model)")
    else:
        lines.append(
            f"cost: ${cost['cost_usd']:.4f} at batch prices "
            f"(${cost['standard_cost_usd']:.4f} on the standard API, "
            f"saved ${cost['saved_usd']:.4f})"
        )
    return lines


def _age(created_at: str, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (now - created).total_seconds())


def status_report(job_name: str, store: Store, now: datetime | None = None) -> dict[str, Any]:
    """The job's state as `status --json` prints it."""
    now = now or datetime.now(UTC)
    batches = [
        {
            "id": b.id,
            "status": b.status,
            "requests": b.request_count,
            "counts": b.counts,
            "age_s": round(_age(b.created_at, now), 1),
            "collected": b.collected,
        }
        for b in store.batches()
    ]
    dead = [
        {"input_key": d.input_key, "custom_id": d.custom_id, "error_type": d.error_type,
         "error_message": d.error_message, "attempts": d.attempts}
        for d in store.iter_dead()
    ]  # fmt: skip
    return {
        "job": job_name,
        "requests": store.status_counts(),
        "batches": batches,
        "dead_letters": dead,
        "cost": cost_report(store),
    }


def format_status(report: dict[str, Any]) -> str:
    counts = report["requests"]
    total = sum(counts.values())
    lines = [f"{report['job']}: {total} requests: " + _counts(counts)]
    for b in report["batches"]:
        state = "collected" if b["collected"] else b["status"]
        lines.append(
            f"  {b['id']}  {state:<11} {b['requests']:>6} requests  "
            f"age {_duration(b['age_s'])}  {_counts(b['counts'])}"
        )
    lines += ["  " + line for line in format_cost(report["cost"])]
    for d in report["dead_letters"][:20]:
        lines.append(f"  dead: {d['input_key']}: {d['error_type']}: {d['error_message']}")
    if len(report["dead_letters"]) > 20:
        lines.append(f"  ... and {len(report['dead_letters']) - 20} more dead letters")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v) or "none"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
