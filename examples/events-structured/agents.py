"""A ticket router that lets an LLM choose among the events the registry describes.

``support.ticket.submitted`` ─▶ ticket-router ─ (LLM picks one discovered ``ticket.*.requested``) ─▶ a team
─ ``ticket.handled`` ─▶ ticket-router ─▶ the goal's answer ``{ticket_id, routed_to, payload, handled_by, ...}``.

The router hard-codes no team: it discovers the ``ticket.*.requested`` events that a deployed agent consumes
(``context.toolkit.discover_actionable_events``), shows them to the LLM with their descriptions and payload fields
(``format_as_prompt_text``), rejects a choice that is not among them, and checks the LLM's payload against the
event's registered schema (``toolkit.create_payload``) before delegating. Deploying a fourth team is enough for the
router to start using it.
"""

from __future__ import annotations

import fnmatch
import json
import logging

from events import (
    ACCOUNT_REQUESTED,
    BILLING_REQUESTED,
    ROUTE_PATTERN,
    TECHNICAL_REQUESTED,
    TICKET_HANDLED,
    TICKET_SUBMITTED,
)
from soorma import TaskNotFoundError, Worker
from soorma.ai.llm import LLMError, llm_configured, provider_from_env

log = logging.getLogger("events-structured")

ROUTER_PROMPT = """You are the ticket router of a support desk. Route the ticket below to exactly one of the
available events, and write that event's payload from the ticket.

Available events:
{events}

Ticket:
{ticket}

Answer with one JSON object: {{"event_type": "<one of the available event names>", "payload": {{...the event's
payload fields...}}, "reasoning": "<one sentence>"}}"""

# --- the router ---------------------------------------------------------------------------------------------------

router = Worker(
    "ticket-router",
    description="Routes support tickets to the team whose registered event fits best (an LLM decides).",
    events_consumed=[TICKET_SUBMITTED],
    events_produced=[TICKET_HANDLED],
)


@router.on_task("support.ticket.submitted")
async def route(task, context):
    """Discover the teams' events, let the LLM pick one and fill its payload, validate it, delegate it."""
    if not llm_configured():
        await task.fail("no LLM configured: set SOORMA_LLM_BASE_URL (and SOORMA_LLM_API_KEY, SOORMA_LLM_MODEL)")
        return
    toolkit = context.toolkit
    events = [e for e in await toolkit.discover_actionable_events(topic="action-requests")
              if fnmatch.fnmatch(e["name"], ROUTE_PATTERN)]
    if not events:
        await task.fail(f"no deployed team consumes {ROUTE_PATTERN}")
        return
    ticket = {k: task.data.get(k) for k in ("subject", "body", "customer") if task.data.get(k)}
    prompt = ROUTER_PROMPT.format(events=toolkit.format_as_prompt_text(events), ticket=json.dumps(ticket, indent=1))
    try:
        answer = await provider_from_env().complete([{"role": "user", "content": prompt}], temperature=0.0,
                                                    json_mode=True)
        choice = answer.json()
    except (LLMError, ValueError) as exc:
        raise RuntimeError(f"the LLM gave no routing decision: {exc}") from exc  # retried by the delivery layer
    discovered = {e["name"] for e in events}
    event_type = str(choice.get("event_type") or "")
    if event_type not in discovered:
        await task.fail(f"the LLM chose {event_type!r}, which is not a discovered event "
                        f"(discovered: {', '.join(sorted(discovered))})")
        return
    try:
        payload = await toolkit.create_payload(event_type, {**(choice.get("payload") or {}), "ticket_id": task.task_id})
    except ValueError as exc:
        await task.fail(str(exc))
        return
    task.state["route"] = {"routed_to": event_type, "payload": payload, "reasoning": choice.get("reasoning", "")}
    await task.delegate(event_type, payload, response_event="ticket.handled")


@router.on_result("ticket.handled")
async def handled(result, context):
    """The team answered: complete the ticket's goal with the route and the team's resolution."""
    try:
        task = await result.restore_task()
    except TaskNotFoundError:
        return  # a late duplicate of a result that already completed its ticket
    route = task.state["route"]
    if not result.success:
        await task.fail(f"{route['routed_to']} failed: {result.error}")
        return
    answer = result.result or {}
    await task.complete({"ticket_id": task.task_id, **route, "handled_by": answer.get("team"),
                         "resolution": answer.get("resolution")})


# --- the teams ----------------------------------------------------------------------------------------------------

billing = Worker("billing-team", description="Answers billing tickets.", events_consumed=[BILLING_REQUESTED])
technical = Worker("tech-support", description="Answers technical tickets.", events_consumed=[TECHNICAL_REQUESTED])
account = Worker("account-team", description="Answers account tickets.", events_consumed=[ACCOUNT_REQUESTED])


@billing.on_task("ticket.billing.requested")
async def billing_ticket(task, context):
    """Billing's answer (a refund when an amount is named)."""
    amount = task.data.get("amount")
    resolution = f"refund of {amount:.2f} issued" if isinstance(amount, (int, float)) else "invoice explained"
    await task.complete({"team": "billing", "resolution": resolution, "summary": task.data["summary"]})


@technical.on_task("ticket.technical.requested")
async def technical_ticket(task, context):
    """Technical support's answer (high severity pages the on-call engineer)."""
    severity = task.data["severity"]
    resolution = "on-call engineer paged" if severity == "high" else "troubleshooting guide sent"
    await task.complete({"team": "technical", "resolution": resolution, "severity": severity,
                         "summary": task.data["summary"]})


@account.on_task("ticket.account.requested")
async def account_ticket(task, context):
    """The account team's answer."""
    await task.complete({"team": "account", "resolution": f"{task.data['action']} done",
                         "summary": task.data["summary"]})
