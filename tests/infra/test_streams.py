"""The live goal streams' WebSocket API in the synthesized template (soorma.infra.streams): its routes are the one
table's (soorma.functions.http_api.STREAM_ROUTES), the authorizer guards $connect, the API is dual-stack, and only
the gateway and the tracker may post to its connections, on this API's stage alone."""

from __future__ import annotations

import json

from soorma.functions.http_api import STREAM_ROUTE_SELECTION, STREAM_ROUTES


def _function_of(synth, role_logical_id: str) -> str:
    (name,) = [k for k, v in synth.of_type("AWS::Lambda::Function").items()
               if v["Properties"]["Role"]["Fn::GetAtt"][0] == role_logical_id]
    return name


def _web_socket_api(synth) -> tuple[str, dict]:
    apis = {k: v for k, v in synth.of_type("AWS::ApiGatewayV2::Api").items()
            if v["Properties"].get("ProtocolType") == "WEBSOCKET"}
    assert len(apis) == 1, apis
    return next(iter(apis.items()))


def test_the_websocket_api_has_the_route_tables_routes_behind_the_authorizer(synthesized):
    synth = synthesized("sqs")
    api_id, api = _web_socket_api(synth)
    assert api["Properties"]["RouteSelectionExpression"] == STREAM_ROUTE_SELECTION
    assert api["Properties"]["IpAddressType"] == "dualstack"
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
              if r["Properties"]["ApiId"] == {"Ref": api_id}}
    assert sorted(routes) == sorted(STREAM_ROUTES)
    assert routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert all(r.get("AuthorizationType", "NONE") == "NONE" for k, r in routes.items() if k != "$connect")
    (authorizer,) = [a["Properties"] for a in synth.of_type("AWS::ApiGatewayV2::Authorizer").values()
                     if a["Properties"]["ApiId"] == {"Ref": api_id}]
    assert authorizer["AuthorizerType"] == "REQUEST"
    # no identity source: a browser's handshake carries its credential in Sec-WebSocket-Protocol, not Authorization,
    # and API Gateway refuses a handshake lacking any listed source before the authorizer could check the other one
    assert authorizer.get("IdentitySource", []) == []
    assert "AuthorizerFunction" in json.dumps(authorizer["AuthorizerUri"])
    integrations = [i["Properties"] for i in synth.of_type("AWS::ApiGatewayV2::Integration").values()
                    if i["Properties"]["ApiId"] == {"Ref": api_id}]
    assert integrations and all("GatewayFunction" in json.dumps(i["IntegrationUri"]) for i in integrations)
    (stage,) = [s["Properties"] for s in synth.of_type("AWS::ApiGatewayV2::Stage").values()
                if s["Properties"]["ApiId"] == {"Ref": api_id}]
    assert stage["StageName"] == "v1" and stage["AccessLogSettings"]["DestinationArn"]
    assert any("StreamUrl" in name for name in synth.template["Outputs"])


def test_only_the_gateway_and_the_tracker_manage_connections_of_this_api_only(synthesized):
    synth = synthesized("sqs")
    api_id, _ = _web_socket_api(synth)
    managers = {}
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("execute-api:") for a in actions):
                assert actions == ["execute-api:ManageConnections"] or actions == "execute-api:ManageConnections"
                text = json.dumps(statement["Resource"])
                assert api_id in text and "/v1/*/@connections/*" in text, text
                for role in policy["Properties"]["Roles"]:
                    managers[_function_of(synth, role["Ref"])] = text
    assert sorted(name.split("Function")[0] for name in managers) == ["PlatformGateway", "PlatformTracker"]
    for name in managers:
        env = synth.resources[name]["Properties"]["Environment"]["Variables"]
        assert "SOORMA_STREAM_CONNECTIONS_URL" in env and api_id in json.dumps(env["SOORMA_STREAM_CONNECTIONS_URL"])


def test_no_stream_api_where_the_functions_cannot_reach_it(synthesized):
    synth = synthesized("nats")  # network="endpoints": no route to the API's endpoint from the VPC
    assert not [v for v in synth.of_type("AWS::ApiGatewayV2::Api").values()
                if v["Properties"].get("ProtocolType") == "WEBSOCKET"]
