"""The synthesized platform (both transports): what the template must say, checked offline.

Each module-scoped ``synth`` is one ``cdk synth`` through the pinned CLI (see conftest.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from aws_cdk.assertions import Match, Template

from soorma.functions.http_api import ROUTES
from soorma.infra import packaging

# The first synth on a fresh machine downloads and bundles the arm64 wheels (pytest-timeout's 300 s is per test,
# fixture setup included).
pytestmark = pytest.mark.timeout(1200)

# ------------------------------------------------------------------------------------------------ helpers


def _refs(value) -> set[str]:
    """Logical ids referenced (Ref / Fn::GetAtt) anywhere in ``value``."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        for v in value.values():
            found |= _refs(v)
    elif isinstance(value, list):
        for v in value:
            found |= _refs(v)
    return found


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def role_statements(synth, role_id: str) -> list[dict]:
    statements = []
    for policy in synth.of_type("AWS::IAM::Policy").values():
        roles = {r.get("Ref") for r in policy["Properties"].get("Roles", [])}
        if role_id in roles:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def function_roles(synth) -> dict[str, str]:
    """function logical id → role logical id."""
    out = {}
    for fid, fn in synth.of_type("AWS::Lambda::Function").items():
        role = fn["Properties"]["Role"]
        out[fid] = role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None
    return out


def secret_ids(synth, pattern: str) -> set[str]:
    kinds = ("AWS::SecretsManager::Secret", "AWS::SecretsManager::SecretTargetAttachment")
    return {k for k, v in synth.resources.items() if v["Type"] in kinds and re.search(pattern, k)}


def secrets_with(statements: list[dict], action: str) -> set[str]:
    found: set[str] = set()
    for st in statements:
        if st["Effect"] == "Allow" and action in _as_list(st["Action"]):
            found |= _refs(st["Resource"])
    return found


def one(synth, prefix: str) -> str:
    (match,) = [k for k in synth.of_type("AWS::Lambda::Function") if k.startswith(prefix)]
    return match


# ------------------------------------------------------------------------------------------------ synth, nag, lint


def test_cdk_synth_offline_with_pinned_cli(synth):
    assert synth.template_path.exists()
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    assert manifest["artifacts"]["Soorma"]["environment"] == "aws://123456789012/eu-west-1"
    assert "Found errors" not in synth.output


def test_cdk_nag_aws_solutions_pass_with_justified_suppressions(synth):
    rows = synth.nag_report()
    assert rows, "cdk-nag wrote no report"
    # Every finding, whatever its level ("Rule Level"), is either compliant or suppressed with a reason.
    bad = [r for r in rows if r["Compliance"] not in ("Compliant", "Suppressed", "N/A")]
    assert not bad, bad
    # Every suppression in the template carries a real reason.
    reasons = []
    for resource in synth.resources.values():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            reasons.append((rule["id"], rule["reason"]))
    assert reasons, "expected justified suppressions"
    for rule_id, reason in reasons:
        assert len(reason) >= 40, (rule_id, reason)
    suppressed = {r["Rule ID"] for r in rows if r["Compliance"] == "Suppressed"}
    assert suppressed <= {
        "AwsSolutions-IAM4", "AwsSolutions-IAM5", "AwsSolutions-L1", "AwsSolutions-SMG4", "AwsSolutions-RDS10",
        "AwsSolutions-RDS11", "AwsSolutions-APIG4", "AwsSolutions-ECS2", "AwsSolutions-ECS4",
        "AwsSolutions-SQS3",  # the parked queues: the end of the dead-letter path, consumed by nothing
    }, suppressed


# W3005 (a DependsOn that a GetAtt already implies) is how CDK itself writes every function's dependency on its role;
# it changes nothing at deploy.
CFN_LINT_IGNORED = ("W3005",)


def test_cfn_lint_passes(synth):
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", "--format", "parseable", "--ignore-checks", *CFN_LINT_IGNORED, "--",
         str(synth.template_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------ network, database


def test_database_is_serverless_v2_encrypted_iam_auth_in_isolated_subnets(synth):
    template = Template.from_json(synth.template)
    template.has_resource_properties("AWS::RDS::DBCluster", {
        "Engine": "aurora-postgresql",
        "EngineVersion": Match.string_like_regexp(r"^1[67]\."),
        "StorageEncrypted": True,
        "KmsKeyId": Match.any_value(),
        "EnableIAMDatabaseAuthentication": True,
        "ServerlessV2ScalingConfiguration": {"MinCapacity": 0, "MaxCapacity": 4, "SecondsUntilAutoPause": 300},
        "DeletionProtection": True,
    })
    ipv6 = network_of(synth) == "ipv6"
    template.has_resource_properties("AWS::RDS::DBInstance", {
        "DBInstanceClass": "db.serverless", "PubliclyAccessible": False,
    })
    (group,) = synth.of_type("AWS::RDS::DBSubnetGroup").values()
    subnet_ids = _refs(group["Properties"]["SubnetIds"])
    assert subnet_ids and all("isolated" in s for s in subnet_ids), subnet_ids
    # No route to the IPv4 internet; with IPv6 egress, only ::/0 to the egress-only internet gateway (outbound only).
    tables = {a["Properties"]["RouteTableId"]["Ref"] for a in synth.of_type("AWS::EC2::SubnetRouteTableAssociation")
              .values() if a["Properties"]["SubnetId"]["Ref"] in subnet_ids}
    routes = [r["Properties"] for r in synth.of_type("AWS::EC2::Route").values()
              if r["Properties"]["RouteTableId"]["Ref"] in tables]
    assert tables
    if ipv6:
        (eigw,) = synth.of_type("AWS::EC2::EgressOnlyInternetGateway")
        assert len(routes) == len(tables)
        assert all(set(r) == {"RouteTableId", "DestinationIpv6CidrBlock", "EgressOnlyInternetGatewayId"}
                   and r["DestinationIpv6CidrBlock"] == "::/0" and r["EgressOnlyInternetGatewayId"] == {"Ref": eigw}
                   for r in routes), routes
    else:
        assert not routes
    # Only the platform's security groups reach PostgreSQL.
    for rule in synth.of_type("AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        assert "CidrIp" not in props and "CidrIpv6" not in props, props
    (cluster,) = synth.of_type("AWS::RDS::DBCluster").values()
    owner = [s for s in synth.of_type("AWS::SecretsManager::Secret").values()
             if '"username":"soorma_owner"' in json.dumps(s["Properties"].get("GenerateSecretString", {}))
             .replace(" ", "").replace('\\"', '"')]
    if ipv6:
        # RDS manages and rotates the owner password, encrypted with the platform key; none is in the template
        # (a hosted rotation function would have no IPv4 route to Secrets Manager).
        assert cluster["Properties"]["ManageMasterUserPassword"] is True
        assert "KmsKeyId" in cluster["Properties"]["MasterUserSecret"]
        assert "MasterUserPassword" not in cluster["Properties"] and not owner
        template.resource_count_is("AWS::SecretsManager::RotationSchedule", 0)
    else:
        # The owner's credentials are generated into Secrets Manager, encrypted with the platform key, rotated.
        assert "MasterUserPassword" in cluster["Properties"]
        assert owner and "KmsKeyId" in owner[0]["Properties"]
        template.resource_count_is("AWS::SecretsManager::RotationSchedule", 1)


def network_of(synth) -> str:
    return synth.context.get("soorma:network", "ipv6")


def test_nat_gateway_only_with_nats(synth):
    nat = synth.of_type("AWS::EC2::NatGateway")
    assert len(nat) == (1 if synth.transport == "nats" else 0)
    if synth.transport == "sqs":
        assert not synth.of_type("AWS::EC2::InternetGateway")
    endpoints = {json.dumps(e["Properties"]["ServiceName"]) for e in synth.of_type("AWS::EC2::VPCEndpoint").values()}
    assert any(".s3" in e for e in endpoints)  # the free gateway endpoint, in both networks
    interface = network_of(synth) == "endpoints"
    assert any("secretsmanager" in e for e in endpoints) == interface
    assert any(".sns" in e for e in endpoints) == (interface and synth.transport == "sqs")
    for subnet in synth.of_type("AWS::EC2::Subnet").values():
        assert "Fn::Select" in subnet["Properties"]["AvailabilityZone"]  # no zone names baked in
    assert synth.of_type("AWS::EC2::FlowLog")


def test_functions_reach_aws_apis_over_ipv6_only_outbound_or_through_endpoints(synth):
    """``soorma:network`` (ipv6 by default, endpoints in the nats app): with ipv6 every platform function in the VPC
    may send IPv6 (``Ipv6AllowedForDualStack``) and calls dual-stack endpoints (``AWS_USE_DUALSTACK_ENDPOINT``), and
    its security group lets out only PostgreSQL to the database and HTTPS over IPv6; nothing lets anything in but
    the database's port from the functions. With endpoints, neither setting appears and HTTPS goes only to the
    endpoints' security group."""
    ipv6 = network_of(synth) == "ipv6"
    vpc_functions = {fid: fn for fid, fn in synth.of_type("AWS::Lambda::Function").items()
                     if "VpcConfig" in fn["Properties"] and fid.startswith("Platform")}
    assert len(vpc_functions) >= 7
    for fid, fn in vpc_functions.items():
        props = fn["Properties"]
        assert bool(props["VpcConfig"].get("Ipv6AllowedForDualStack")) == ipv6, fid
        assert (props["Environment"]["Variables"].get("AWS_USE_DUALSTACK_ENDPOINT") == "true") == ipv6, fid
    (sg_id,) = [k for k in synth.of_type("AWS::EC2::SecurityGroup") if k.startswith("PlatformFunctionsSg")]
    inline = synth.resources[sg_id]["Properties"].get("SecurityGroupEgress", [])
    separate = [r["Properties"] for r in synth.of_type("AWS::EC2::SecurityGroupEgress").values()
                if _refs(r["Properties"]["GroupId"]) == {sg_id}]
    def destination(rule: dict) -> str:
        return rule.get("CidrIpv6") or rule.get("CidrIp") or next(iter(_refs(rule["DestinationSecurityGroupId"])))

    rules = {destination(r): (r["FromPort"], r["ToPort"]) for r in [*inline, *separate]}
    (database,) = [g for g in synth.of_type("AWS::EC2::SecurityGroup") if g.startswith("PlatformDatabaseSg")]
    if ipv6:
        assert set(rules) == {database, "::/0"} and rules["::/0"] == (443, 443), rules
    else:
        (endpoints,) = [g for g in synth.of_type("AWS::EC2::SecurityGroup") if g.startswith("PlatformEndpointsSg")]
        assert set(rules) == {database, endpoints} and rules[endpoints] == (443, 443), rules


def test_migrations_custom_resource_runs_migrate_on_every_deploy(synth):
    (migrations_id, migrations), = synth.of_type("Custom::SoormaMigrations").items()
    assert set(migrations["Properties"]) >= {"ServiceToken", "Migrations", "DeployNonce"}
    depends = set(migrations.get("DependsOn", []))
    assert any(d.startswith("PlatformDatabase") for d in depends), depends
    migrate = synth.resources[one(synth, "PlatformMigrateFunction")]["Properties"]
    assert migrate["Environment"]["Variables"]["SOORMA_HANDLER"] == "soorma.functions.migrate.handler.handler"


# ------------------------------------------------------------------------------------------------ functions


PLATFORM_HANDLERS = {
    "PlatformRegistryFunction": "soorma.functions.registry.handler.handler",
    "PlatformMemoryFunction": "soorma.functions.memory.handler.handler",
    "PlatformAuthorizerFunction": "soorma.functions.gateway.authorizer.handler",
    "PlatformTrackerFunction": "soorma.functions.tracker.handler.handler",
    "PlatformMigrateFunction": "soorma.functions.migrate.handler.handler",
}


def test_platform_functions_arm64_python312_with_local_layers(synth):
    template = Template.from_json(synth.template)
    for prefix, target in {**PLATFORM_HANDLERS,
                           "PlatformGatewayFunction": "soorma.functions.gateway.handler.handler",
                           "PlatformProtocolsFunction": "soorma.functions.protocols.handler.handler",
                           "PlatformIdentityFunction": "soorma.functions.identity.handler.handler"}.items():
        props = synth.resources[one(synth, prefix)]["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["Handler"] == "soorma.infra.runtime.boot.handler"
        env = props["Environment"]["Variables"]
        assert env["SOORMA_HANDLER"] == target
        assert env["POWERTOOLS_SERVICE_NAME"].startswith("soorma-")
        assert props["Layers"]
        assert props["VpcConfig"]["SubnetIds"]
        assert "LoggingConfig" in props and props["LoggingConfig"]["LogGroup"]
        assert not any(k in env for k in ("SOORMA_APP_DATABASE_URL", "SOORMA_DATABASE_URL", "SOORMA_API_KEY_PEPPER"))
    for prefix in ("PlatformRegistryFunction", "PlatformMemoryFunction", "PlatformGatewayFunction"):
        assert synth.resources[one(synth, prefix)]["Properties"]["ReservedConcurrentExecutions"] >= 1
    template.has_resource_properties("AWS::Lambda::LayerVersion", {
        "CompatibleArchitectures": ["arm64"], "CompatibleRuntimes": ["python3.12"],
    })
    for group in synth.of_type("AWS::Logs::LogGroup").values():
        assert group["Properties"].get("RetentionInDays"), group


def test_every_function_role_reaches_only_its_own_resources(synth):
    roles = function_roles(synth)
    app = secret_ids(synth, r"^PlatformAppSecretAttachment")
    # the owner secret: generated by the template, or (IPv6 egress) managed by RDS and named by its cluster
    owner = secret_ids(synth, r"^PlatformDatabaseSecretAttachment") or {
        lid for lid, res in synth.of_type("AWS::RDS::DBCluster").items()
        if res["Properties"].get("ManageMasterUserPassword")}
    pepper = secret_ids(synth, r"^PlatformApiKeyPepper")
    nats = secret_ids(synth, r"^PlatformNatsSecret")
    developer = secret_ids(synth, r"^PlatformDeveloperKey")
    admin = secret_ids(synth, r"^PlatformAdminKey")
    jwt = secret_ids(synth, r"^PlatformJwtSecret")
    assert app and owner and pepper and developer and admin
    assert bool(jwt) == (synth.context.get("soorma:jwt-secret") == "generate")
    expected_reads = {
        # every HTTP function verifies delivery grants, whose key is derived from the pepper (soorma.grants)
        "PlatformRegistryFunction": app | pepper, "PlatformMemoryFunction": app | pepper,
        # the tracker publishes a session's next queued goal (double-texting 'enqueue')
        "PlatformTrackerFunction": app | pepper | (nats if synth.transport == "nats" else set()),
        # the gateway hashes the keys it creates and rotates (POST /v1/api-keys, /v1/tenants) with the pepper
        "PlatformGatewayFunction": app | pepper | (nats if synth.transport == "nats" else set()),
        # A2A, MCP and chat submit goals as the gateway does: the same publisher and delivery grants
        "PlatformProtocolsFunction": app | pepper | (nats if synth.transport == "nats" else set()),
        # the identity service hashes the admin keys it issues and encrypts its signing keys with the pepper; it
        # publishes nothing, so never the NATS secret
        "PlatformIdentityFunction": app | pepper,
        "PlatformAuthorizerFunction": app | pepper | jwt, "PlatformMigrateFunction": app | owner,
        "PlatformRegistrarFunction": app | pepper,
        # webhooks: the bookkeeping in the VPC reads the database; the sender outside it only the pepper (it derives
        # the signing secrets from it) and no database secret at all
        "PlatformWebhooksFunction": app, "PlatformWebhookSenderFunction": pepper,
        # the agents' GB-seconds per goal from their log groups: the database only (tests/infra/test_usage_recorder.py)
        "PlatformUsageFunction": app,
    }
    for fid, role in roles.items():
        statements = role_statements(synth, role)
        for st in statements:
            actions = _as_list(st["Action"])
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), (fid, st)
            # X-Ray's span writers have no resource-level permissions: '*' for the agents with soorma:tracing=xray
            # only (tests/infra/test_usage_recorder.py)
            xray_spans = fid.startswith("Agents") and sorted(actions) == ["xray:PutSpans", "xray:PutSpansForIndexing"]
            if st["Resource"] == "*" and not xray_spans:
                pytest.fail(f"{fid}: {actions} on every resource")
        # The LLM gateway (protocols function) keeps the tenants' provider keys in secrets soorma/llm/<tenant>,
        # created on demand (tests/infra/test_llm_gateway.py); no other function touches them.
        llm_keys = [st for st in statements if "secret:soorma/llm/*" in json.dumps(st["Resource"])]
        assert not llm_keys or fid.startswith("PlatformProtocolsFunction"), fid
        statements = [st for st in statements if st not in llm_keys]
        reads = secrets_with(statements, "secretsmanager:GetSecretValue")
        prefix = next((p for p in expected_reads if fid.startswith(p)), None)
        if prefix is not None:
            assert reads == expected_reads[prefix], (fid, reads)
        elif fid.startswith("Agents"):
            key = fid.replace("Function", "Key")[: -8]
            assert len(reads) == 1 and next(iter(reads)).startswith(key), (fid, reads)
        else:  # CDK's own functions (provider framework, log retention) read no secret
            assert not reads, (fid, reads)
        writes = secrets_with(statements, "secretsmanager:PutSecretValue")
        if fid.startswith("PlatformRegistrarFunction"):
            assert developer | admin <= writes
            assert all(w.startswith(("PlatformDeveloperKey", "PlatformAdminKey", "Agents")) for w in writes), writes
        else:
            assert not writes, (fid, writes)
        # Bedrock: only InvokeModel; the memory function only the configured model, the LLM gateway (protocols) the
        # models and inference profiles tenants choose at run time.
        for st in statements:
            bedrock = [a for a in _as_list(st["Action"]) if a.startswith("bedrock:")]
            if bedrock and fid.startswith("PlatformProtocolsFunction"):
                assert bedrock == ["bedrock:InvokeModel"] and "foundation-model/*" in json.dumps(st["Resource"]), st
            elif bedrock:
                assert fid.startswith("PlatformMemoryFunction") and bedrock == ["bedrock:InvokeModel"], (fid, st)
                assert "foundation-model/amazon.titan-embed-text-v2:0" in json.dumps(st["Resource"]), st
        publishes = secrets_with(statements, "sns:Publish")
        assert not publishes or fid.startswith(("PlatformGatewayFunction", "PlatformProtocolsFunction", "PlatformTrackerFunction")), fid
        # SQS: a function consumes only the queue of its own event source mapping.
        consumed = secrets_with(statements, "sqs:ReceiveMessage")
        mapped = {_refs(m["Properties"]["EventSourceArn"]).pop() for m in synth.of_type(
            "AWS::Lambda::EventSourceMapping").values() if _refs(m["Properties"]["FunctionName"]) == {fid}}
        assert consumed == mapped, (fid, consumed, mapped)


def layers_of(synth, prefix: str) -> set[str]:
    """The names of our layers (``db``, ``platform``, ``auth``, ``embeddings``, ``sdk``) of one function; AWS's
    Parameters and Secrets extension layer (an ARN, see :func:`extension_layers_of`) is not one of them."""
    props = synth.resources[one(synth, prefix)]["Properties"]
    names = set()
    for ref in props.get("Layers", []):
        if ref in extension_layers_of(synth, prefix):
            continue
        match = re.match(r"^Platform([A-Z][a-z]+)Layer", ref["Ref"])
        assert match, ref
        names.add(match.group(1).lower())
    return names


SECRETS_EXTENSION = re.compile(
    r"^arn:aws:lambda:eu-west-1:\d{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:\d+$")


def extension_layers_of(synth, prefix: str) -> list:
    return [layer for layer in synth.resources[one(synth, prefix)]["Properties"].get("Layers", [])
            if isinstance(layer, str) and SECRETS_EXTENSION.match(layer)]


def test_functions_read_secrets_through_the_parameters_and_secrets_extension(synth):
    """Every function that reads a secret at init gets AWS's Parameters and Secrets Lambda Extension (arm64, this
    region) and its port, so soorma.infra.runtime.boot reads without importing boto3; except under SnapStart,
    whose container credentials the extension cannot take (those functions read before the snapshot)."""
    snap = synth.context.get("soorma:snap-start") == "true"
    checked = 0
    for logical_id, fn in synth.of_type("AWS::Lambda::Function").items():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        if not any(k.endswith("_SECRET_ARN") for k in env):
            continue
        name = re.match(r"^Platform([A-Z][a-z]+)Function", logical_id)
        snap_started = snap and name is not None and name.group(1).lower() in packaging.SNAP_START_FUNCTIONS
        extension = [layer for layer in fn["Properties"].get("Layers", [])
                     if isinstance(layer, str) and SECRETS_EXTENSION.match(layer)]
        if snap_started:
            assert not extension and "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" not in env, logical_id
        else:
            assert len(extension) == 1, (logical_id, fn["Properties"].get("Layers"))
            assert env.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT") == "2773", logical_id
        checked += 1
    assert checked >= 7  # the platform's functions and the example agents


def env_of(synth, prefix: str) -> dict[str, str]:
    return synth.resources[one(synth, prefix)]["Properties"]["Environment"]["Variables"]


def test_snap_start_publishes_the_http_functions_and_the_api_invokes_their_live_alias(synth):
    """soorma:snap-start (on in the nats app, off by default in the sqs one): registry, memory and gateway get
    ``SnapStart: {ApplyOn: PublishedVersions}``, a published version and an alias ``live`` on it, and every HTTP API
    integration of theirs invokes that alias (SnapStart never applies to $LATEST); nothing else changes."""
    on = synth.context.get("soorma:snap-start") == "true"
    aliases = synth.of_type("AWS::Lambda::Alias")
    versions = synth.of_type("AWS::Lambda::Version")
    integrations = list(synth.of_type("AWS::ApiGatewayV2::Integration").values())
    for name in ("Registry", "Memory", "Gateway", "Protocols", "Identity", "Tracker", "Authorizer", "Migrate"):
        fn = one(synth, f"Platform{name}Function")
        snap = synth.resources[fn]["Properties"].get("SnapStart")
        expected = on and name.lower() in packaging.SNAP_START_FUNCTIONS
        assert (snap == {"ApplyOn": "PublishedVersions"}) == expected, (name, snap)
        mine = {k: a for k, a in aliases.items() if fn in _refs(a["Properties"]["FunctionName"])}
        targets = {r for i in integrations for r in _refs(i["Properties"]["IntegrationUri"])}
        if expected:
            (alias_id, alias), = mine.items()
            assert alias["Properties"]["Name"] == "live"
            version_ref = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
            assert version_ref in versions and fn in _refs(versions[version_ref]["Properties"]["FunctionName"])
            assert alias_id in targets and fn not in targets, name
        else:
            assert not mine, name
            if name in ("Registry", "Memory", "Gateway", "Protocols", "Identity", "Tracker"):
                assert fn in targets, name


def test_each_function_gets_only_the_layers_it_imports(synth):
    bedrock = synth.embedding_provider == "bedrock"
    expected = {
        "PlatformRegistryFunction": {"db", "platform"},
        # jsonschema: input answers; no PyJWT/cryptography: the gateway is on every goal's path (issue 17's size)
        "PlatformGatewayFunction": {"db", "platform", "schemas"},
        "PlatformProtocolsFunction": {"db", "platform", "schemas", "protocols"},  # a2a-sdk's server and the MCP SDK: its alone
        "PlatformTrackerFunction": {"db", "platform"},
        "PlatformUsageFunction": {"db", "platform"},
        "PlatformMigrateFunction": {"db"},  # psycopg alone: no web framework where no request is served
        "PlatformRegistrarFunction": {"db", "platform"},
        "PlatformAuthorizerFunction": {"db", "auth"},  # PyJWT + cryptography only where tokens are verified
        "PlatformIdentityFunction": {"db", "platform", "auth"},  # ... or signed (the identity service)
        "PlatformMemoryFunction": {"db", "platform"} if bedrock else {"db", "platform", "embeddings"},  # numpy
    }
    for prefix, layers in expected.items():
        assert layers_of(synth, prefix) == layers, prefix
    # The model's layer (onnxruntime, tokenizers, the ONNX model: ~60 MB zipped) is not even built by default.
    built = {re.match(r"^Platform([A-Z][a-z]+)Layer", k).group(1).lower()
             for k in synth.of_type("AWS::Lambda::LayerVersion")}
    assert ("embeddings" in built) == (not bedrock), built


def test_memory_embeds_with_bedrock_by_default_and_the_local_model_on_request(synth):
    memory, migrate = env_of(synth, "PlatformMemoryFunction"), env_of(synth, "PlatformMigrateFunction")
    endpoints = {json.dumps(e["Properties"]["ServiceName"]): e for e in synth.of_type("AWS::EC2::VPCEndpoint").values()}
    bedrock_endpoints = [e for name, e in endpoints.items() if "bedrock-runtime" in name]
    # The vector columns the migrations create are as wide as the provider's vectors.
    assert memory["SOORMA_EMBEDDING_DIMENSIONS"] == migrate["SOORMA_EMBEDDING_DIMENSIONS"]
    if synth.embedding_provider == "bedrock":
        assert memory["SOORMA_EMBEDDING_PROVIDER"] == "bedrock"
        assert memory["SOORMA_EMBEDDING_DIMENSIONS"] == "1024"
        assert memory["SOORMA_BEDROCK_EMBEDDING_MODEL"] == "amazon.titan-embed-text-v2:0"
        assert "SOORMA_EMBEDDING_TOKENIZER_PATH" not in memory
        if network_of(synth) == "endpoints":
            # Bedrock through an interface endpoint whose policy allows only that model.
            (endpoint,) = bedrock_endpoints
            statements = endpoint["Properties"]["PolicyDocument"]["Statement"]
            assert [st["Action"] for st in statements] == ["bedrock:InvokeModel"]
            assert "foundation-model/amazon.titan-embed-text-v2:0" in json.dumps(statements)
        else:
            # Bedrock at its dual-stack endpoint over IPv6 (its IPv4-only default name would not connect).
            assert not bedrock_endpoints and memory["AWS_USE_DUALSTACK_ENDPOINT"] == "true"
    else:
        assert memory["SOORMA_EMBEDDING_PROVIDER"] == "local"
        assert memory["SOORMA_EMBEDDING_DIMENSIONS"] == "384"
        assert memory["SOORMA_EMBEDDING_TOKENIZER_PATH"] == "/opt/soorma-model/tokenizer.json"
        assert not bedrock_endpoints
        # no embedding model: only the LLM gateway's role may call Bedrock (tests/infra/test_llm_gateway.py)
        protocols_role = function_roles(synth)[one(synth, "PlatformProtocolsFunction")]
        assert not [lid for lid, policy in synth.of_type("AWS::IAM::Policy").items()
                    if "bedrock:" in json.dumps(policy) and {"Ref": protocols_role} not in policy["Properties"]["Roles"]]


def test_gateway_settings_reach_the_functions_that_read_them(synth):
    envs = {name: env_of(synth, f"Platform{name.capitalize()}Function")
            for name in ("registry", "memory", "gateway", "protocols", "identity", "authorizer", "tracker", "migrate",
                         "registrar")}
    admin_tenant = synth.context.get("soorma:platform-admin-tenant", "platform")
    for name, env in envs.items():
        assert env["SOORMA_PLATFORM_ADMIN_TENANT"] == admin_tenant, name
        assert "SOORMA_JWT_SECRET" not in env, name  # a secret travels as an ARN only
        for var in env:  # each setting only where it is read
            if var.startswith("SOORMA_JWT_"):
                assert name == "authorizer", (name, var)
            if var.startswith(("SOORMA_A2A_", "SOORMA_CHAT_")):
                assert name == "protocols", (name, var)
            if var.startswith("SOORMA_RATE_"):
                assert name in ("registry", "memory", "gateway", "protocols", "identity", "tracker"), (name, var)
            if var.startswith("SOORMA_IDENTITY_"):
                assert name in ("identity", "authorizer"), (name, var)
    assert envs["protocols"]["SOORMA_A2A_CARD_TENANT"] == "default"  # the public card lists the deployed agents
    assert "SOORMA_API_KEY_PEPPER_SECRET_ARN" in envs["gateway"]  # key create/rotate
    authorizer = envs["authorizer"]
    props = synth.resources[one(synth, "PlatformAuthorizerFunction")]["Properties"]
    if synth.transport == "sqs":
        assert authorizer["SOORMA_JWT_SECRET_ARN"] == {"Ref": next(iter(secret_ids(synth, r"^PlatformJwtSecret")))}
        assert "SOORMA_JWT_JWKS_URL" not in authorizer
        for name in ("registry", "memory", "gateway", "protocols", "tracker"):
            assert envs[name]["SOORMA_RATE_KEY_RPS"] == "20" and envs[name]["SOORMA_RATE_TENANT_RPS"] == "80"
        assert envs["protocols"]["SOORMA_A2A_DEFAULT_GOAL_TYPE"] == "research.goal"
        # no JWKS URL: the authorizer stays in the isolated subnets
        assert all("isolated" in s["Ref"] for s in props["VpcConfig"]["SubnetIds"])
    else:
        assert authorizer["SOORMA_JWT_JWKS_URL"] == synth.context["soorma:jwt-jwks-url"]
        assert authorizer["SOORMA_JWT_ISSUER"] == synth.context["soorma:jwt-issuer"]
        assert authorizer["SOORMA_JWT_AUDIENCE"] == "soorma-client"
        assert "SOORMA_JWT_SECRET_ARN" not in authorizer
        # a JWKS URL is on the internet: the authorizer runs in the egress subnets
        assert all("egress" in s["Ref"] for s in props["VpcConfig"]["SubnetIds"])


def test_bootstrap_tenants_and_keys_are_created_by_the_registrar_not_the_template(synth):
    (admin,) = synth.of_type("Custom::SoormaPlatformAdmin").values()
    (developer,) = synth.of_type("Custom::SoormaBootstrapKey").values()
    admin_secret = next(iter(secret_ids(synth, r"^PlatformAdminKey")))
    developer_secret = next(iter(secret_ids(synth, r"^PlatformDeveloperKey")))
    assert admin["Properties"]["AdminTenantId"] == synth.context.get("soorma:platform-admin-tenant", "platform")
    assert admin["Properties"]["SecretArn"] == {"Ref": admin_secret}
    assert developer["Properties"]["SecretArn"] == {"Ref": developer_secret}
    for resource in (admin, developer):
        assert any(d.startswith("PlatformMigrations") for d in resource.get("DependsOn", []))
    registrar = one(synth, "PlatformRegistrarFunction")
    provider_fn = [k for k, v in synth.of_type("AWS::Lambda::Function").items()
                   if registrar in json.dumps(v["Properties"].get("Environment", {}))]
    assert provider_fn, "the registrar provider's framework function"
    # The secrets are generated by Secrets Manager (a placeholder the registrar overwrites): no key in the template.
    for sid in (admin_secret, developer_secret):
        assert "SecretString" not in synth.resources[sid]["Properties"]
    assert not re.search(r"(?<![A-Za-z0-9])sk_[0-9a-f]{8,}_", json.dumps(synth.template))
    outputs = synth.template["Outputs"]
    assert any(o["Value"] == {"Ref": admin_secret} for o in outputs.values()), outputs


# ------------------------------------------------------------------------------------------------ HTTP API


def test_http_api_routes_and_authorizer(synth):
    template = Template.from_json(synth.template)
    template.has_resource_properties("AWS::ApiGatewayV2::Authorizer", {
        "AuthorizerType": "REQUEST",
        "AuthorizerPayloadFormatVersion": "2.0",
        "EnableSimpleResponses": True,
        "AuthorizerResultTtlInSeconds": 300,
    })
    # the HTTP API's (the live goal streams' WebSocket API is checked in tests/infra/test_streams.py)
    (http_api,) = [k for k, v in synth.of_type("AWS::ApiGatewayV2::Api").items()
                   if v["Properties"].get("ProtocolType") == "HTTP"]

    def of_http_api(kind: str) -> list[dict]:
        return [v for v in synth.of_type(kind).values() if v["Properties"]["ApiId"] == {"Ref": http_api}]

    (authorizer,) = of_http_api("AWS::ApiGatewayV2::Authorizer")
    # cached keyed on the credential alone: the service tenant/user headers are applied by the functions
    assert authorizer["Properties"]["IdentitySource"] == ["$request.header.Authorization"]
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in of_http_api("AWS::ApiGatewayV2::Route")}
    # the route table is the one source (soorma.functions.http_api; test_routes.py checks the integrations)
    assert {route.key for route in ROUTES} == set(routes)
    public = {route.key for route in ROUTES if route.public}
    # the only public /v1 routes are the identity service's, whose function verifies its credential itself
    # (X-Identity-Admin-Key, which this cache is not keyed on: soorma.functions.identity.service)
    assert "GET /.well-known/agent-card.json" in public
    assert {k for k in public if k.split(" ")[1].startswith("/v1/")} == {"ANY /v1/identity/{proxy+}"}
    for key, props in routes.items():
        expected = "NONE" if key in public else "CUSTOM"
        assert props.get("AuthorizationType", "NONE") == expected, key
        if expected == "CUSTOM":
            assert props["AuthorizerId"], key
    (stage,) = of_http_api("AWS::ApiGatewayV2::Stage")
    assert stage["Properties"]["AccessLogSettings"]["DestinationArn"]
    assert stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


# ------------------------------------------------------------------------------------------------ events


def test_every_queue_has_a_dead_letter_queue_with_a_depth_alarm(synth):
    """Every consumer queue has a dead-letter queue. The tracker's dead letters stay in its dead-letter queue (depth
    alarm there); an agent's dead-letter queue feeds the dead-letter function, which tells the goal and moves the
    message to the agent's parked queue (depth alarm there, and an alarm on the dead-letter queue's oldest message
    for when that function fails). The webhooks' queues are the events' concern only through the same
    QueueWithDlq: tests/infra/test_webhooks.py checks them."""
    queues = {qid: q for qid, q in synth.of_type("AWS::SQS::Queue").items() if not qid.startswith("PlatformWebhook")}
    if synth.transport == "nats":
        assert not queues
        return
    dlqs, source_of = set(), {}
    for qid, queue in queues.items():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            dlqs.add(dlq)
            source_of[dlq] = qid
            assert redrive["maxReceiveCount"] >= 1
    tags = {qid: {t["Key"]: t["Value"] for t in q["Properties"].get("Tags", [])} for qid, q in queues.items()}
    parked = {qid for qid, t in tags.items() if t.get("soorma:role") == "parked"}
    mains = set(queues) - dlqs - parked
    assert mains and dlqs and parked and len(mains) == len(dlqs)
    for qid in queues:
        assert queues[qid]["Properties"].get("SqsManagedSseEnabled") is True, qid
    depth, age = set(), set()
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            depth |= _refs(props["Dimensions"])
            assert props["Threshold"] == 1 and props["AlarmActions"]
        if props.get("MetricName") == "ApproximateAgeOfOldestMessage":
            age |= _refs(props["Dimensions"])
            assert props["AlarmActions"]
    agent_dlqs = {qid for qid in dlqs if tags[qid].get("soorma:parked_queue_url")}
    assert agent_dlqs and len(agent_dlqs) == len(parked)
    for dlq in agent_dlqs:
        t = tags[dlq]
        assert _refs(t["soorma:parked_queue_url"]) <= parked and t["soorma:agent"] and t["soorma:platform_tenant_id"]
        assert t["soorma:max_deliveries"].isdigit()
        assert _refs(t["soorma:notice_queue_url"]) == {source_of[next(d for d in dlqs - agent_dlqs)]}  # tracker's
    assert (dlqs - agent_dlqs) | parked <= depth and agent_dlqs <= age, (depth, age)
    # Every consumer queue feeds a function with partial batch responses, and every agent's dead-letter queue feeds
    # the dead-letter function; parked queues feed nothing.
    mappings = {mid: m for mid, m in synth.of_type("AWS::Lambda::EventSourceMapping").items()
                if not next(iter(_refs(m["Properties"]["EventSourceArn"]))).startswith("PlatformWebhook")}
    sources = {_refs(m["Properties"]["EventSourceArn"]).pop(): m for m in mappings.values()}
    assert set(sources) == mains | agent_dlqs
    (dead_letter_fn,) = {_refs(sources[d]["Properties"]["FunctionName"]).pop() for d in agent_dlqs}
    assert dead_letter_fn.startswith("PlatformDeadLettersFunction")
    assert "VpcConfig" not in synth.resources[dead_letter_fn]["Properties"]  # no database, no secret: no VPC
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # least privilege: it sends only to the parked queues and the tracker's queue
    role = function_roles(synth)[dead_letter_fn]
    sends = secrets_with(role_statements(synth, role), "sqs:SendMessage")
    tracker_queue = {source_of[d] for d in dlqs - agent_dlqs}
    assert sends == parked | tracker_queue, sends


def test_agent_subscriptions_filter_on_tenant_topic_and_event_type(synth):
    subs = synth.of_type("AWS::SNS::Subscription")
    if synth.transport == "nats":
        assert not subs
        return
    policies = {k: v["Properties"].get("FilterPolicy") for k, v in subs.items()}
    tracker = [p for k, p in policies.items() if k.startswith("PlatformTracker")]
    assert tracker == [None]  # the tracker records every event
    agents = {k: p for k, p in policies.items() if k.startswith("Agents")}
    assert len(agents) == 4
    for key, policy in agents.items():
        assert policy["platform_tenant_id"] == ["default"], key
        groups = policy.get("$or") or [{k: v for k, v in policy.items() if k != "platform_tenant_id"}]
        for group in groups:
            assert group["topic"] and group["event_type"], key
    researcher = next(p for k, p in agents.items() if k.startswith("AgentsResearcherSub"))
    assert researcher == {"platform_tenant_id": ["default"], "topic": ["action-requests"],
                          "event_type": ["research.retrieve"]}
    for sub in subs.values():
        assert sub["Properties"]["RawMessageDelivery"] is True
    template = Template.from_json(synth.template)
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_agents_registered_with_their_deployment_binding(synth):
    registrations = synth.of_type("Custom::SoormaAgent")
    assert len(registrations) == 4
    for reg in registrations.values():
        props = reg["Properties"]
        assert props["PlatformTenantId"] == "default"
        deployment = props["Deployment"]
        assert deployment["transport"] == synth.transport
        assert deployment["subscriptions"] and deployment["function_name"]
        assert props["Agent"]["name"] and props["KeySecretArn"]
        assert any(d.startswith("PlatformMigrations") for d in reg.get("DependsOn", []))
    for fid in (k for k in synth.of_type("AWS::Lambda::Function") if k.startswith("Agents")):
        props = synth.resources[fid]["Properties"]
        assert "VpcConfig" not in props
        assert props["Architectures"] == ["arm64"] and props["Runtime"] == "python3.12"
        assert props["Environment"]["Variables"]["SOORMA_HANDLER"].startswith("agents.")


def test_nats_bridge_runs_on_fargate_arm64(synth):
    services = synth.of_type("AWS::ECS::Service")
    if synth.transport == "sqs":
        assert not services
        return
    (service,) = services.values()
    assert service["Properties"]["LaunchType"] == "FARGATE"
    assert service["Properties"]["DesiredCount"] == 1
    assert service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    (task,) = synth.of_type("AWS::ECS::TaskDefinition").values()
    assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert container["Image"].startswith("public.ecr.aws/docker/library/python:3.12")
    assert container["Command"][:2] == ["python", "-c"]
    env = {e["Name"] for e in container["Environment"]}
    assert {"SOORMA_NATS_SECRET_ARN", "SOORMA_APP_DB_SECRET_ARN", "SOORMA_TRACKER_FUNCTION"} <= env
    role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    invoked = secrets_with(role_statements(synth, role), "lambda:InvokeFunction")
    functions = set(synth.of_type("AWS::Lambda::Function"))
    agents = {f for f in functions if f.startswith("Agents")}
    tracker = {one(synth, "PlatformTrackerFunction")}
    assert invoked == agents | tracker
