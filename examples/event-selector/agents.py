"""``EventSelector`` routes support tickets to the billing, technical or escalation worker.

``support.ticket.created {"ticket_id", "customer", "subject", "description"}`` ─▶ support-router:

1. ``EventSelector(context, topic="action-requests").select_event(state)`` discovers the events deployed agents
   consume on ``action-requests``, asks the LLM to pick one and write its payload, and rejects a choice that was
   not discovered (:class:`EventSelectionError`);
2. the router checks the payload against the chosen event's registered schema (``toolkit.create_payload``), saves
   the ticket's context and ``publish_decision(...)``s the request with the ticket's task id as correlation id;
3. the worker answers ``support.ticket.resolved``; the router restores the ticket (``TaskContext.restore``) and
   answers the goal with the route, the LLM's reasoning and the worker's resolution.

An unusable decision (an undiscovered event, or a payload that does not match the schema) falls back to the
escalation worker, as soorma-core's example does, and says so in the answer.

Each worker declares its event with an **inline payload schema** (``payload_schema_name`` + ``payload_schema``):
``soorma local deploy`` registers it with the registry, and that is all the selector needs to describe it.
"""

from __future__ import annotations

import logging

from soorma import EventDefinition, TaskContext, Worker
from soorma.ai.llm import llm_configured
from soorma.ai.selection import EventSelectionError, EventSelector

log = logging.getLogger("event-selector")

RESOLVED = "support.ticket.resolved"
ESCALATION = "support.escalation.requested"

PROMPT = """You route customer support tickets. Choose the single best specialist event for the ticket below, among
the available events only. Never choose support.ticket.created (that is the router itself).

Available events:
{events}

Ticket:
{state}

Answer with one JSON object: {{"event_type": "<one of the available event names>", "topic": "action-requests",
"payload": {{...the event's payload fields...}}, "reasoning": "<one sentence>", "confidence": <0..1>}}"""

TICKET_FIELDS = {
    "ticket_id": {"type": "string", "description": "Ticket identifier"},
    "customer": {"type": "string", "description": "Customer name or id"},
    "subject": {"type": "string", "description": "Ticket subject line"},
}

TICKET_CREATED = EventDefinition(
    event_name="support.ticket.created",
    description="A new customer support ticket that needs routing to the right specialist",
    payload_schema_name="support_ticket_v1",
    payload_schema={"type": "object", "properties": {**TICKET_FIELDS, "description": {"type": "string"}},
                    "required": ["ticket_id", "subject", "description"]},
)
BILLING = EventDefinition(
    event_name="support.billing.requested",
    description="Billing specialist: charges, invoices, refunds and payment failures",
    payload_schema_name="billing_ticket_v1",
    payload_schema={"type": "object", "properties": {
        **TICKET_FIELDS, "issue": {"type": "string", "enum": ["double_charge", "refund", "invoice", "other"]},
        "amount": {"type": "number", "description": "Amount concerned, if any"}},
        "required": ["ticket_id", "issue"]},
)
TECHNICAL = EventDefinition(
    event_name="support.technical.requested",
    description="Technical specialist: bugs, API errors, outages and integration problems",
    payload_schema_name="technical_ticket_v1",
    payload_schema={"type": "object", "properties": {
        **TICKET_FIELDS, "error_code": {"type": "string", "description": "Error code or HTTP status, if any"},
        "component": {"type": "string", "description": "Affected component"}},
        "required": ["ticket_id", "component"]},
)
ESCALATE = EventDefinition(
    event_name=ESCALATION,
    description="Escalation desk: legal threats, enterprise or VIP customers, anything the others cannot take",
    payload_schema_name="escalation_ticket_v1",
    payload_schema={"type": "object", "properties": {
        **TICKET_FIELDS, "reason": {"type": "string", "enum": ["legal", "vip", "enterprise", "other"]}},
        "required": ["ticket_id", "reason"]},
)

# --- the router ---------------------------------------------------------------------------------------------------

router = Worker("support-router", description="Routes support tickets with EventSelector (an LLM decides).",
                events_consumed=[TICKET_CREATED])


@router.on_task("support.ticket.created")
async def route_ticket(task, context):
    """Select the specialist event, check its payload, save the ticket, publish the decision."""
    if not llm_configured():
        await task.fail("no LLM configured: set SOORMA_LLM_BASE_URL (and SOORMA_LLM_API_KEY, SOORMA_LLM_MODEL)")
        return
    ticket = {k: task.data.get(k) for k in ("ticket_id", "customer", "subject", "description") if task.data.get(k)}
    selector = EventSelector(context, topic="action-requests", prompt_template=PROMPT)
    route = {"fallback": False}
    try:
        decision = await selector.select_event(ticket)
        if decision.event_type == "support.ticket.created":
            raise EventSelectionError("the LLM chose the router's own event")
        decision.payload = await context.toolkit.create_payload(
            decision.event_type, {**decision.payload, "ticket_id": ticket.get("ticket_id", task.task_id)})
    except (EventSelectionError, ValueError) as exc:
        log.warning("ticket %s: no usable decision (%s); escalating", task.task_id, exc)
        from soorma.ai.decisions import EventDecision

        decision = EventDecision(event_type=ESCALATION, topic="action-requests",
                                 payload={"ticket_id": ticket.get("ticket_id", task.task_id), "reason": "other",
                                          "subject": ticket.get("subject", "")},
                                 reasoning=f"fallback: {exc}")
        route["fallback"] = True
    route.update({"routed_to": decision.event_type, "reasoning": decision.reasoning, "payload": decision.payload})
    task.state["route"] = route
    await task.save()  # before the request: the answer must find the ticket
    await selector.publish_decision(decision, correlation_id=task.task_id, response_event=RESOLVED)


@router.on_result(RESOLVED)
async def ticket_resolved(result, context):
    """A specialist answered: answer the ticket's goal with the route and the resolution."""
    task = await TaskContext.restore(result.correlation_id, context)
    if task is None:
        return  # a late duplicate: the ticket was already answered (its saved context is gone)
    if not result.success:
        await task.fail(f"{task.state['route']['routed_to']} failed: {result.error}")
        return
    await task.complete({**task.state["route"], **(result.result or {})})


# --- the specialists ----------------------------------------------------------------------------------------------

billing = Worker("billing-worker", description="Billing specialist.", events_consumed=[BILLING])
technical = Worker("technical-worker", description="Technical specialist.", events_consumed=[TECHNICAL])
escalation = Worker("escalation-worker", description="Escalation desk.", events_consumed=[ESCALATE])


@billing.on_task("support.billing.requested")
async def billing_ticket(task, context):
    """Refunds a double charge; explains anything else."""
    issue = task.data["issue"]
    resolution = "duplicate charge refunded" if issue in ("double_charge", "refund") else "billing explained"
    await task.complete({"handled_by": "billing-worker", "resolution": resolution, "issue": issue})


@technical.on_task("support.technical.requested")
async def technical_ticket(task, context):
    """Opens an engineering incident for the component."""
    await task.complete({"handled_by": "technical-worker", "component": task.data["component"],
                         "resolution": f"incident opened for {task.data['component']}"
                                       + (f" ({task.data['error_code']})" if task.data.get("error_code") else "")})


@escalation.on_task(ESCALATION)
async def escalation_ticket(task, context):
    """Hands the ticket to a human lead."""
    await task.complete({"handled_by": "escalation-worker", "reason": task.data["reason"],
                         "resolution": "assigned to a support lead"})
