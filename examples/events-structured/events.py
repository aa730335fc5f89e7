"""The ticket router's event definitions: names, topics, descriptions and JSON Schemas.

``soorma local deploy`` registers every definition an agent lists in ``events_consumed``/``events_produced``
(``POST /v1/events``) before the agent goes live, so the router discovers the teams' events with their
descriptions and payload fields, and checks the LLM's payload against the registered schema.
"""

from __future__ import annotations

from soorma import EventDefinition

TICKET_SUBMITTED = EventDefinition(
    event_name="support.ticket.submitted",
    topic="action-requests",
    description="A customer support ticket to be routed to the right team",
    payload_schema={
        "type": "object",
        "properties": {
            "subject": {"type": "string", "description": "The ticket's subject line"},
            "body": {"type": "string", "description": "What the customer wrote"},
            "customer": {"type": "string", "description": "Customer name or id"},
        },
        "required": ["subject", "body"],
    },
)

BILLING_REQUESTED = EventDefinition(
    event_name="ticket.billing.requested",
    topic="action-requests",
    description="Billing team: invoices, charges, refunds, payment methods and prices",
    payload_schema={
        "type": "object",
        "properties": {
            "ticket_id": {"type": "string", "description": "The routed ticket"},
            "summary": {"type": "string", "description": "One-line summary of the billing question"},
            "amount": {"type": "number", "description": "Amount in dispute, if the customer named one"},
        },
        "required": ["ticket_id", "summary"],
    },
)

TECHNICAL_REQUESTED = EventDefinition(
    event_name="ticket.technical.requested",
    topic="action-requests",
    description="Technical support: errors, crashes, outages, slowness, API and integration problems",
    payload_schema={
        "type": "object",
        "properties": {
            "ticket_id": {"type": "string", "description": "The routed ticket"},
            "summary": {"type": "string", "description": "One-line summary of the problem"},
            "severity": {"type": "string", "enum": ["low", "medium", "high"], "description": "How bad it is"},
            "component": {"type": "string", "description": "Affected product component, if known"},
        },
        "required": ["ticket_id", "summary", "severity"],
    },
)

ACCOUNT_REQUESTED = EventDefinition(
    event_name="ticket.account.requested",
    topic="action-requests",
    description="Account team: sign-in, password resets, email changes, plan upgrades and cancellations",
    payload_schema={
        "type": "object",
        "properties": {
            "ticket_id": {"type": "string", "description": "The routed ticket"},
            "summary": {"type": "string", "description": "One-line summary of the request"},
            "action": {"type": "string", "enum": ["password_reset", "email_change", "plan_change", "cancel", "other"]},
        },
        "required": ["ticket_id", "summary", "action"],
    },
)

TICKET_HANDLED = EventDefinition(
    event_name="ticket.handled",
    topic="action-results",
    description="A team's answer to a routed ticket",
    payload_schema={
        "type": "object",
        "properties": {"team": {"type": "string"}, "resolution": {"type": "string"}},
        "required": ["team", "resolution"],
    },
)

#: The events the router may route to (a glob over event names; what the teams register).
ROUTE_PATTERN = "ticket.*.requested"
