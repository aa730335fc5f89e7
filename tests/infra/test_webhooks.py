"""The webhooks' AWS resources (soorma.infra.webhooks), on the synthesized template of both apps: the sender runs
outside the VPC and reads only the pepper, the bookkeeping function runs in the isolated subnets, each is fed by its
own queue (with a dead-letter queue), and only the functions that wake the sender may send to the control queue."""

from __future__ import annotations

from typing import Any


def _refs(value: Any) -> set[str]:
    """Logical ids ``value`` refers to (Ref / Fn::GetAtt, nested anywhere)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        for item in value.values():
            found |= _refs(item)
    elif isinstance(value, list):
        for item in value:
            found |= _refs(item)
    return found


def _one(synth, kind: str, prefix: str) -> tuple[str, dict]:
    (found,) = [(lid, res) for lid, res in synth.of_type(kind).items()
                if lid.startswith(prefix) and not lid.startswith(prefix + "Dlq")]
    return found


def test_sender_outside_the_vpc_and_bookkeeping_inside(synth):
    _, sender = _one(synth, "AWS::Lambda::Function", "PlatformWebhookSenderFunction")
    _, control = _one(synth, "AWS::Lambda::Function", "PlatformWebhooksFunction")
    assert "VpcConfig" not in sender["Properties"]
    assert control["Properties"]["VpcConfig"]["SubnetIds"]
    sender_env = sender["Properties"]["Environment"]["Variables"]
    assert sender_env["SOORMA_HANDLER"] == "soorma.functions.webhooks.aws.sender_handler"
    assert "SOORMA_APP_DB_SECRET_ARN" not in sender_env and "SOORMA_WEBHOOK_ALLOW_LOOPBACK" not in sender_env
    assert control["Properties"]["Environment"]["Variables"]["SOORMA_HANDLER"] == (
        "soorma.functions.webhooks.aws.control_handler")


def test_each_function_is_fed_by_its_own_queue_with_a_dead_letter_queue(synth):
    sender_id, _ = _one(synth, "AWS::Lambda::Function", "PlatformWebhookSenderFunction")
    control_id, _ = _one(synth, "AWS::Lambda::Function", "PlatformWebhooksFunction")
    send_queue, send = _one(synth, "AWS::SQS::Queue", "PlatformWebhookSendQueue")
    control_queue, control = _one(synth, "AWS::SQS::Queue", "PlatformWebhookControlQueue")
    for queue in (send, control):
        assert "RedrivePolicy" in queue["Properties"] and queue["Properties"]["SqsManagedSseEnabled"]
    mappings = {(next(iter(_refs(m["Properties"]["EventSourceArn"]))), next(iter(_refs(m["Properties"]["FunctionName"]))))
                for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()}
    assert (send_queue, sender_id) in mappings and (control_queue, control_id) in mappings


def test_only_the_waking_functions_may_send_to_the_control_queue(synth):
    control_queue, _ = _one(synth, "AWS::SQS::Queue", "PlatformWebhookControlQueue")
    send_queue, _ = _one(synth, "AWS::SQS::Queue", "PlatformWebhookSendQueue")
    senders: dict[str, set[str]] = {control_queue: set(), send_queue: set()}
    for policy in synth.of_type("AWS::IAM::Policy").values():
        roles = _refs(policy["Properties"].get("Roles", []))
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "sqs:SendMessage" in actions:
                for queue in _refs(statement["Resource"]) & set(senders):
                    senders[queue] |= roles
    def owners(roles: set[str]) -> set[str]:
        return {r.split("ServiceRole")[0] for r in roles}

    assert owners(senders[control_queue]) == {"PlatformWebhooksFunction", "PlatformWebhookSenderFunction",
                                               "PlatformTrackerFunction", "PlatformGatewayFunction"}
    assert owners(senders[send_queue]) == {"PlatformWebhooksFunction"}
