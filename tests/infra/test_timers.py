"""The synthesized timer resources (:mod:`soorma.infra.timers`): an EventBridge Scheduler schedule group, a role only
EventBridge Scheduler of this account may assume and that may only invoke the gateway, and a gateway that may only
create schedules in that group and pass only that role, only to EventBridge Scheduler."""

from __future__ import annotations

import pytest

from .test_synth import function_roles, role_statements

pytestmark = pytest.mark.timeout(1200)


def _only(mapping: dict) -> tuple[str, dict]:
    assert len(mapping) == 1, list(mapping)
    return next(iter(mapping.items()))


def _gateway(synth) -> tuple[str, dict]:
    return _only({k: v for k, v in synth.of_type("AWS::Lambda::Function").items()
                  if "GatewayFunction" in k})


def test_the_scheduler_role_may_only_invoke_the_gateway(synth):
    group_id, _ = _only(synth.of_type("AWS::Scheduler::ScheduleGroup"))
    role_id, role = _only({k: v for k, v in synth.of_type("AWS::IAM::Role").items()
                           if "TimerSchedulerRole" in k})
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    gateway_id, gateway = _gateway(synth)
    statements = role_statements(synth, role_id)
    assert [s["Action"] for s in statements] == ["lambda:InvokeFunction"]
    assert statements[0]["Resource"] == {"Fn::GetAtt": [gateway_id, "Arn"]}
    env = gateway["Properties"]["Environment"]["Variables"]
    assert env["SOORMA_SCHEDULER_GROUP"] == {"Ref": group_id}
    assert env["SOORMA_SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": [role_id, "Arn"]}
    _, tracker = _only({k: v for k, v in synth.of_type("AWS::Lambda::Function").items() if "TrackerFunction" in k})
    # the tracker arms a satisfied wait's timer: its schedule invokes the gateway, which fires it
    assert tracker["Properties"]["Environment"]["Variables"]["SOORMA_SCHEDULER_TARGET_ARN"] == {
        "Fn::GetAtt": [gateway_id, "Arn"]}


@pytest.mark.parametrize("function", ["GatewayFunction", "TrackerFunction"])
def test_gateway_and_tracker_may_only_create_schedules_in_the_group_and_pass_only_that_role(synth, function):
    fid = _only({k: v for k, v in synth.of_type("AWS::Lambda::Function").items() if function in k})[0]
    statements = role_statements(synth, function_roles(synth)[fid])
    scheduler = [s for s in statements if "scheduler" in str(s["Action"])]
    assert [s["Action"] for s in scheduler] == ["scheduler:CreateSchedule"]
    assert "TimerScheduleGroup" in str(scheduler[0]["Resource"])
    [passing] = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    assert "TimerSchedulerRole" in str(passing["Resource"])
    everything = [s for s in statements if s.get("Resource") == "*" and "scheduler" in str(s["Action"])]
    assert everything == []
