"""The synthesized HTTP API has exactly the routes of the one route table (:data:`soorma.functions.http_api.ROUTES`,
which the local API Gateway reads too): route keys, their functions, and the authorizer on every non-public route.
The table itself is checked against the functions' FastAPI routes in tests/unit/functions/test_routes.py."""

from __future__ import annotations

import re

import pytest

from soorma.functions.http_api import ROUTES


@pytest.mark.timeout(1200)
def test_template_has_exactly_the_route_table(synth):
    integrations = {k: v["Properties"]["IntegrationUri"] for k, v in synth.of_type(
        "AWS::ApiGatewayV2::Integration").items()}
    found = set()
    # the HTTP API's routes (the live goal streams' WebSocket API has its own table: tests/infra/test_streams.py)
    (http_api,) = [k for k, v in synth.of_type("AWS::ApiGatewayV2::Api").items()
                   if v["Properties"].get("ProtocolType") == "HTTP"]
    for route in synth.of_type("AWS::ApiGatewayV2::Route").values():
        props = route["Properties"]
        if props["ApiId"] != {"Ref": http_api}:
            continue
        integration = props["Target"]["Fn::Join"][1][1]["Ref"]
        uri = integrations[integration]
        if "Ref" in uri:  # under SnapStart (the nats app) the alias "live" of the function
            uri = synth.resources[uri["Ref"]]["Properties"]["FunctionName"]
            function_id = uri["Ref"]
        else:
            function_id = uri["Fn::GetAtt"][0]
        function = re.match(r"^Platform([A-Z][a-z]+)Function", function_id).group(1).lower()
        found.add((props["RouteKey"], function, props.get("AuthorizationType", "NONE") == "NONE"))
    assert found == {(route.key, route.function, route.public) for route in ROUTES}
