"""The LLM gateway's AWS side (soorma.infra.platform ``_allow_llm_gateway``), on the synthesized template of both
apps: no function's environment holds a model provider's key (the agents' least of all), only the protocols function
may invoke Bedrock models for tenants and touch the tenants' key secrets (``soorma/llm/*``), and no such secret
exists until a tenant sets a key (nothing bills while idle)."""

from __future__ import annotations

import json
import re
from typing import Any

# Environment variable names of model provider credentials (ours and the providers' own conventions).
KEY_NAMES = re.compile(r"(LLM_API_KEY|OPENAI_API_KEY|ANTHROPIC_API_KEY|AZURE_OPENAI_API_KEY|LLM_KEY|MODEL_API_KEY)$")


def _statements(policy: dict) -> list[dict]:
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _roles_with(synth, action: str, resource_part: str) -> set[str]:
    """Logical ids of the roles whose policies allow ``action`` on a resource whose rendering contains
    ``resource_part``."""
    roles: set[str] = set()
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for statement in _statements(policy):
            if statement.get("Effect") != "Allow" or action not in _as_list(statement.get("Action")):
                continue
            if any(resource_part in json.dumps(resource) for resource in _as_list(statement.get("Resource"))):
                roles |= {role["Ref"] for role in policy["Properties"].get("Roles", [])}
    return roles


def _function_role(synth, prefix: str) -> str:
    (role,) = [res["Properties"]["Role"]["Fn::GetAtt"][0] for lid, res in synth.of_type("AWS::Lambda::Function").items()
               if lid.startswith(prefix)]
    return role


def test_no_function_environment_holds_a_provider_key(synth):
    functions = synth.of_type("AWS::Lambda::Function")
    agents = [lid for lid in functions if not lid.startswith("Platform")]
    assert agents, "the example's agent functions are in the template"
    for lid, function in functions.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not [name for name in variables if KEY_NAMES.search(name)], lid
        assert "sk-" not in json.dumps(variables), lid


def test_only_the_protocols_function_calls_models_and_holds_the_tenants_keys(synth):
    protocols = _function_role(synth, "PlatformProtocolsFunction")
    assert _roles_with(synth, "bedrock:InvokeModel", "inference-profile/*") == {protocols}
    for action in ("secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
                   "secretsmanager:DeleteSecret"):
        assert _roles_with(synth, action, "secret:soorma/llm/*") == {protocols}, action
    # created on demand: the template makes no secret for a tenant's key
    for secret in synth.of_type("AWS::SecretsManager::Secret").values():
        assert "soorma/llm/" not in json.dumps(secret["Properties"].get("Name", ""))
