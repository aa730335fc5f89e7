"""Usage and cost per goal and per tenant (issue 18 item 3; docs/usage-and-llm.md).

What is counted, by whom, into ``gateway.goal_usage`` (migration 0045: one row per identity, goal and UTC day, with
counters that only grow, so concurrent writers add without reading):

* ``events`` — the tracker, once per event it records for the goal (a redelivered event is not counted twice: it is
  counted only when its ``goal_events`` row is new);
* ``memory_reads`` / ``memory_writes`` — the memory service, per request that names the goal (header
  ``X-Soorma-Goal-Id``, sent by the SDK's memory client inside a handler);
* ``input_tokens`` / ``output_tokens`` — the LLM gateway, from the provider's own answer (OpenAI's ``usage``,
  Bedrock Converse's ``usage``), priced at the model's list price when the call is made;
* ``gb_seconds`` / ``invocations`` — the function runtime's REPORT figures: ``Billed Duration`` × ``Memory Size`` of
  each invocation that delivered an event of the goal.

Each item is priced from the one price table shared with ``bench/cost.py`` (:mod:`soorma.functions.shared.prices`):

======================  =============================================================================================
item                    price
======================  =============================================================================================
``gb_seconds``          Lambda arm64 GB-second
``invocations``         Lambda request
``events``              one SNS publish and three SQS requests (send, receive, delete): the ``sqs`` transport's price
``memory_reads/writes`` one HTTP API request and one Lambda request (the memory function's own GB-seconds are not
                        attributed to goals)
``*_tokens``            the model's price per token (:data:`~soorma.functions.shared.prices.MODEL_PRICES`), summed
                        per call as it is made
======================  =============================================================================================
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Mapping

from soorma.functions.shared.prices import model_token_prices, price
from soorma.identity import Identity

#: The usage items of ``GET /v1/goals/{id}/usage`` and ``GET /v1/usage``, in their order.
ITEMS = ("gb_seconds", "invocations", "events", "memory_reads", "memory_writes", "input_tokens", "output_tokens")
#: Usage without a goal (an LLM call outside any goal) is counted under the nil UUID.
NO_GOAL = uuid.UUID(int=0)
_COUNTERS = (*ITEMS, "input_tokens_usd", "output_tokens_usd")


def unit_prices() -> dict[str, float]:
    """US dollars per unit of each item except the tokens (priced per model): ``{"gb_seconds": ..., ...}``."""
    return {
        "gb_seconds": price("lambda_arm_gb_second"),
        "invocations": price("lambda_request_million") / 1e6,
        "events": (price("sns_publish_million") + 3 * price("sqs_request_million")) / 1e6,
        "memory_reads": (price("http_api_million") + price("lambda_request_million")) / 1e6,
        "memory_writes": (price("http_api_million") + price("lambda_request_million")) / 1e6,
    }


def goal_key(goal_id: str | uuid.UUID | None) -> uuid.UUID | None:
    """The goal's UUID, :data:`NO_GOAL` for None or ``""``, None for a goal id that is not a UUID (not counted)."""
    if goal_id is None or goal_id == "":
        return NO_GOAL
    if isinstance(goal_id, uuid.UUID):
        return goal_id
    try:
        return uuid.UUID(str(goal_id))
    except ValueError:
        return None


def gb_seconds(billed_ms: int | float, memory_mb: int | float) -> float:
    """Lambda's GB-seconds of one invocation: billed milliseconds / 1000 × memory MB / 1024
    (https://aws.amazon.com/lambda/pricing/)."""
    return billed_ms / 1000 * memory_mb / 1024


def add(conn: Any, identity: Identity, goal_id: str | uuid.UUID | None, *, gb_seconds: float = 0.0,
        invocations: int = 0, events: int = 0, memory_reads: int = 0, memory_writes: int = 0, input_tokens: int = 0,
        output_tokens: int = 0, model: str | None = None) -> bool:
    """Add usage to ``goal_id``'s row of today (UTC) under ``identity`` (the transaction's own: RLS checks it).

    Parameters: counts (``gb_seconds`` in GB-seconds: billed milliseconds / 1000 × memory MB / 1024); ``model``: the
    model whose list price prices the tokens. Returns False (nothing written) when ``goal_id`` is not a UUID.
    """
    key = goal_key(goal_id)
    if key is None:
        return False
    input_price, output_price = model_token_prices(model or "")
    values = {
        "gb_seconds": max(0.0, float(gb_seconds)), "invocations": max(0, int(invocations)),
        "events": max(0, int(events)), "memory_reads": max(0, int(memory_reads)),
        "memory_writes": max(0, int(memory_writes)), "input_tokens": max(0, int(input_tokens)),
        "output_tokens": max(0, int(output_tokens)),
    }
    values["input_tokens_usd"] = values["input_tokens"] * input_price
    values["output_tokens_usd"] = values["output_tokens"] * output_price
    conn.execute(
        f"insert into gateway.goal_usage (platform_tenant_id, service_tenant_id, service_user_id, goal_id, day,"
        f" {', '.join(_COUNTERS)}) values (%s, %s, %s, %s, (now() at time zone 'utc')::date,"
        f" {', '.join(['%s'] * len(_COUNTERS))})"
        f" on conflict (platform_tenant_id, service_tenant_id, service_user_id, goal_id, day) do update set"
        f" {', '.join(f'{c} = gateway.goal_usage.{c} + excluded.{c}' for c in _COUNTERS)}, updated_at = now()",
        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, key,
         *(values[c] for c in _COUNTERS)),
    )
    return True


def day_of(when: datetime | None) -> date:
    """The UTC day of ``when`` (now when None)."""
    return (when or datetime.now(UTC)).astimezone(UTC).date()


def cost(row: Mapping[str, Any]) -> dict[str, float]:
    """The price of a usage row: ``{item: usd for each of ITEMS, "total": usd}`` (US dollars, rounded to 1e-9).

    ``row`` holds the :data:`ITEMS` counts and ``input_tokens_usd``/``output_tokens_usd`` (tokens are priced per call,
    at the model's price)."""
    prices = unit_prices()
    out = {item: float(row.get(item) or 0) * prices[item] for item in ITEMS if item in prices}
    out["input_tokens"] = float(row.get("input_tokens_usd") or 0)
    out["output_tokens"] = float(row.get("output_tokens_usd") or 0)
    ordered = {item: round(out[item], 9) for item in ITEMS}
    ordered["total"] = round(sum(out.values()), 9)
    return ordered


def _counts(row: Mapping[str, Any] | None) -> dict[str, Any]:
    row = row or {}
    return {item: (float(row.get(item) or 0) if item == "gb_seconds" else int(row.get(item) or 0)) for item in ITEMS}


def goal_usage(conn: Any, goal_id: uuid.UUID) -> dict[str, Any]:
    """``{"usage": {item: count}, "cost_usd": {item: usd, "total": usd}}`` of one goal, summed over its days (RLS:
    the transaction's identity's rows only)."""
    row = conn.execute(
        f"select {', '.join(f'coalesce(sum({c}), 0) as {c}' for c in _COUNTERS)}"
        " from gateway.goal_usage where goal_id = %s",
        (goal_id,),
    ).fetchone()
    return {"usage": _counts(row), "cost_usd": cost(row or {})}


def tenant_days(conn: Any, first: date, last: date) -> list[dict[str, Any]]:
    """The transaction's platform tenant's usage per UTC day in [first, last] (all its service tenants and users,
    through ``gateway.tenant_usage``): ``[{"day": "YYYY-MM-DD", "goals": n, "usage": {...}, "cost_usd": {...}}]``."""
    rows = conn.execute("select * from gateway.tenant_usage(%s, %s)", (first, last)).fetchall()
    return [{"day": row["day"].isoformat(), "goals": int(row["goals"] or 0), "usage": _counts(row),
             "cost_usd": cost(row)} for row in rows]


def own_days(conn: Any, first: date, last: date) -> list[dict[str, Any]]:
    """As :func:`tenant_days`, for the transaction's own identity (service tenant and user) only (RLS)."""
    rows = conn.execute(
        f"select day, {', '.join(f'sum({c}) as {c}' for c in _COUNTERS)},"
        " count(distinct goal_id) filter (where goal_id <> %s) as goals"
        " from gateway.goal_usage where day between %s and %s group by day order by day",
        (NO_GOAL, first, last),
    ).fetchall()
    return [{"day": row["day"].isoformat(), "goals": int(row["goals"] or 0), "usage": _counts(row),
             "cost_usd": cost(row)} for row in rows]


def month_cost(conn: Any, today: date | None = None) -> float:
    """The transaction's platform tenant's cost (US dollars) in the UTC calendar month of ``today`` (default now)."""
    today = today or day_of(None)
    days = tenant_days(conn, today.replace(day=1), today)
    return sum(day["cost_usd"]["total"] for day in days)


__all__ = ["ITEMS", "NO_GOAL", "add", "cost", "day_of", "gb_seconds", "goal_key", "goal_usage", "month_cost", "own_days",
           "tenant_days", "unit_prices"]
