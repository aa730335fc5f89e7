"""The live goal streams' WebSocket API (issue 14, item 1; :mod:`soorma.functions.gateway.streams`).

:func:`add_goal_streams` adds to a :class:`~soorma.infra.platform.SoormaPlatform`:

* an API Gateway WebSocket API (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api.html)
  with the routes of :data:`soorma.functions.http_api.STREAM_ROUTES` (the table the local WebSocket API reads too),
  route selection ``$request.body.action``, every route integrated with the gateway function, and the platform's
  Lambda authorizer on ``$connect`` (a REQUEST authorizer without identity sources,
  :data:`~soorma.functions.http_api.STREAM_IDENTITY_SOURCES`: the credential comes in ``Authorization`` or, from a
  browser, in ``Sec-WebSocket-Protocol``, and API Gateway would refuse a handshake lacking any listed one; it
  answers the WebSocket API's IAM policy form, :func:`soorma.functions.gateway.authorizer.websocket_answer`);
* its stage ``v1`` with throttling and access logs, and the stack output ``StreamUrl`` (``wss://…/v1``: the SDK's
  ``SOORMA_STREAM_URL``);
* for the two functions that push frames (the gateway answers ``follow`` with the backlog, the tracker pushes what
  it records): ``SOORMA_STREAM_CONNECTIONS_URL`` (the stage's ``https://`` callback URL) and
  ``execute-api:ManageConnections`` on this API's stage only (``grant_management_api_access``).

Reaching ``@connections`` from the VPC: the API is created dual-stack (``ip_address_type=DUAL_STACK``,
https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-ip-address-type.html), so its
``execute-api`` host, which also serves the ``@connections`` management API, has IPv6 addresses, and the functions
reach it over the egress-only internet gateway like the other dual-stack endpoints they call (``network="ipv6"``).
With ``network="endpoints"`` (no internet route at all) nothing can reach it: an ``execute-api`` interface endpoint
with private DNS would capture every ``execute-api`` name in the VPC, public APIs included, so streams are not
offered there (the pushes fail, are logged, and nothing else is affected).

Idle cost: none. A WebSocket API bills per message and per connection-minute
(https://aws.amazon.com/api-gateway/pricing/); nothing runs while no one follows a goal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import (
    aws_apigatewayv2 as apigw,
    aws_apigatewayv2_authorizers as authorizers,
    aws_apigatewayv2_integrations as integrations,
)

from soorma.functions.http_api import (
    STREAM_FUNCTION,
    STREAM_IDENTITY_SOURCES,
    STREAM_ROUTE_SELECTION,
    STREAM_ROUTES,
)

if TYPE_CHECKING:
    from soorma.infra.platform import SoormaPlatform

#: The stage's name: the last segment of ``wss://<api id>.execute-api.<region>.amazonaws.com/v1``.
STREAM_STAGE = "v1"
#: The functions that post to connections (gateway: a follow's backlog; tracker: what it records).
PUSHERS = ("gateway", "tracker")


def add_goal_streams(platform: "SoormaPlatform", *, rate: int, burst: int) -> apigw.WebSocketStage:
    """Add the WebSocket API to ``platform`` (see the module docstring); ``rate``/``burst``: the stage's throttle
    (requests per second, as the HTTP API's). Returns the stage."""
    from soorma.infra.platform import suppress

    target = platform.entrypoints[STREAM_FUNCTION]
    integration = integrations.WebSocketLambdaIntegration("StreamIntegration", target)
    authorizer = authorizers.WebSocketLambdaAuthorizer(
        "StreamAuthorizer", platform.functions["authorizer"], authorizer_name="soorma-stream-api-key",
        identity_source=list(STREAM_IDENTITY_SOURCES),
    )
    api = apigw.WebSocketApi(
        platform, "StreamApi", api_name=f"{cdk.Stack.of(platform).stack_name}-soorma-streams",
        description="Soorma live goal streams (WebSocket): follow a goal's events as they are recorded",
        route_selection_expression=STREAM_ROUTE_SELECTION,
        ip_address_type=apigw.IpAddressType.DUAL_STACK,
        connect_route_options=apigw.WebSocketRouteOptions(integration=integration, authorizer=authorizer),
        disconnect_route_options=apigw.WebSocketRouteOptions(integration=integration),
        default_route_options=apigw.WebSocketRouteOptions(integration=integration),
    )
    for route_key in STREAM_ROUTES:
        if not route_key.startswith("$"):
            api.add_route(route_key, integration=integration)
    access_logs = platform._log_group("streamAccess")
    stage = apigw.WebSocketStage(
        platform, "StreamStage", web_socket_api=api, stage_name=STREAM_STAGE, auto_deploy=True,
        throttle=apigw.ThrottleSettings(rate_limit=rate, burst_limit=burst),
    )
    stage.node.default_child.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(  # type: ignore[union-attr]
        destination_arn=access_logs.log_group_arn,
        format=json.dumps({
            "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
            "requestTime": "$context.requestTime", "eventType": "$context.eventType",
            "routeKey": "$context.routeKey", "connectionId": "$context.connectionId", "status": "$context.status",
            "integrationError": "$context.integrationErrorMessage", "authorizerError": "$context.authorizer.error",
            "principal": "$context.authorizer.principal_id",
        }),
    )
    for name in PUSHERS:
        fn = platform.functions[name]
        fn.add_environment("SOORMA_STREAM_CONNECTIONS_URL", stage.callback_url)
        stage.grant_management_api_access(fn)
    for route in api.node.children:
        if isinstance(route, apigw.WebSocketRoute) and route.route_key != "$connect":
            suppress(route, ("AwsSolutions-APIG4",
                f"WebSocket route {route.route_key}: API Gateway runs an authorizer on $connect only; every "
                "message of the connection carries that authorizer's context, and the gateway function acts only "
                "for the identity stored with the connection (soorma.functions.gateway.streams)."))
    for name in PUSHERS:
        suppress(platform.functions[name], ("AwsSolutions-IAM5",
            "execute-api:ManageConnections on this WebSocket API's stage, for any connection id "
            "(<api>/v1/POST/@connections/*): connection ids are created by API Gateway at run time.",
            [r"/^Resource::arn:<AWS::Partition>:execute-api:[^:]+:[^:]+:<[A-Za-z0-9]*StreamApi[0-9A-F]{8}>"
             r"\/v1\/\*\/@connections\/\*$/"]))
    cdk.CfnOutput(platform, "StreamUrl", value=stage.url,
                  description="SOORMA_STREAM_URL: the live goal streams' WebSocket URL")
    return stage
