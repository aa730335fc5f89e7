"""The agents' GB-seconds per goal in AWS (soorma.infra.usage), on the synthesized template of both apps: every agent
function logs in Lambda's JSON format to its own log group, which has exactly one subscription filter delivering
only ``platform.report`` records and the runtime's goals lines to the usage function; CloudWatch Logs may invoke that
function for those log groups only; the function runs in the VPC, reads only the app database secret and calls no
other AWS API; and its configuration names every agent log group with the stack's platform tenant, the function's
memory and timeout (what bounds a report). cdk-nag and cfn-lint run on the same templates (tests/infra/test_synth.py).
"""

from __future__ import annotations

import json

from soorma.functions.tracker.invocation_usage import FILTER_PATTERN

from .test_synth import one, role_statements


def _agents(synth) -> dict[str, dict]:
    return {lid: res for lid, res in synth.of_type("AWS::Lambda::Function").items() if lid.startswith("Agents")}


def _usage_function(synth) -> str:
    return one(synth, "PlatformUsageFunction")


def _log_groups_setting(synth) -> list:
    """``SOORMA_USAGE_LOG_GROUPS`` of the usage function, its ``Fn::Join`` rendered with each ``Ref`` as the logical
    id, parsed."""
    value = synth.resources[_usage_function(synth)]["Properties"]["Environment"]["Variables"]["SOORMA_USAGE_LOG_GROUPS"]
    if isinstance(value, dict):
        separator, parts = value["Fn::Join"]
        value = separator.join(part if isinstance(part, str) else part["Ref"] for part in parts)
    return json.loads(value)


def test_every_agent_log_group_feeds_the_usage_function_with_reports_and_goals_lines_only(synth):
    usage = _usage_function(synth)
    filters = synth.of_type("AWS::Logs::SubscriptionFilter")
    agents = _agents(synth)
    assert agents, "the example's agent functions are in the template"
    subscribed = {}
    for res in filters.values():
        props = res["Properties"]
        assert props["DestinationArn"] == {"Fn::GetAtt": [usage, "Arn"]}
        assert props["FilterPattern"] == FILTER_PATTERN
        subscribed[props["LogGroupName"]["Ref"]] = res
    for lid, res in agents.items():
        props = res["Properties"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON", lid  # platform.report records are JSON
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in subscribed, (lid, group)
    assert len(subscribed) == len(agents) == len(filters)

    # CloudWatch Logs may invoke the usage function for these log groups only
    permissions = [res["Properties"] for res in synth.of_type("AWS::Lambda::Permission").values()
                   if res["Properties"]["FunctionName"] == {"Fn::GetAtt": [usage, "Arn"]}]
    assert permissions and all(p["Principal"] == "logs.amazonaws.com" for p in permissions)
    assert {p["SourceArn"]["Fn::GetAtt"][0] for p in permissions} == set(subscribed)
    assert all(p["Action"] == "lambda:InvokeFunction" for p in permissions)


def test_the_recorder_knows_each_log_group_with_its_tenant_memory_and_timeout(synth):
    entries = {entry["log_group"]: entry for entry in _log_groups_setting(synth)}
    agents = _agents(synth)
    assert len(entries) == len(agents)
    for lid, res in agents.items():
        props = res["Properties"]
        entry = entries[props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert entry["memory_mb"] == props["MemorySize"] and entry["timeout_s"] == props["Timeout"], lid
        assert entry["platform_tenant_id"] == props["Environment"]["Variables"]["SOORMA_PLATFORM_TENANT_ID"], lid


def test_the_usage_function_is_in_the_vpc_and_reaches_nothing_but_the_database(synth):
    usage = synth.resources[_usage_function(synth)]["Properties"]
    env = usage["Environment"]["Variables"]
    assert env["SOORMA_HANDLER"] == "soorma.functions.tracker.invocation_usage.handler"
    assert usage["VpcConfig"]["SubnetIds"] and usage["LoggingConfig"]["LogFormat"] == "JSON"
    role = usage["Role"]["Fn::GetAtt"][0]
    actions = {action for st in role_statements(synth, role) for action in
               (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    # the app database secret (through the Parameters and Secrets extension) and its KMS key: nothing else
    assert actions <= {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt"}, actions
    assert "secretsmanager:GetSecretValue" in actions


# ------------------------------------------------------------------------------------------------ traces to X-Ray
# The nats app is synthesized with -c soorma:tracing=xray, the sqs app with the default (tests/infra/conftest.py).


def test_with_tracing_xray_only_the_agents_export_spans_and_may_call_xray_putspans(synth):
    xray = synth.context.get("soorma:tracing") == "xray"
    agents = _agents(synth)
    for lid, res in agents.items():
        env = res["Properties"]["Environment"]["Variables"]
        assert env.get("SOORMA_TRACES_EXPORT") == ("xray" if xray else None), lid
        # no Lambda active tracing: its segments would carry X-Ray trace ids of their own, not the goal's
        assert "TracingConfig" not in res["Properties"], lid
    writers = set()
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("xray:") for action in actions):
                assert sorted(actions) == ["xray:PutSpans", "xray:PutSpansForIndexing"], statement
                writers |= {role["Ref"] for role in policy["Properties"]["Roles"]}
    agent_roles = {res["Properties"]["Role"]["Fn::GetAtt"][0] for res in agents.values()}
    assert writers == (agent_roles if xray else set())
    # nothing X-Ray-specific exists that could bill while idle (no sampling rule, no group, no collector)
    assert not [lid for lid, res in synth.resources.items() if res["Type"].startswith("AWS::XRay::")]
