"""Deployment bindings on the local stack: ``PUT /_local/functions/{name}/binding`` (issue 12, finding 3).

An agent's deployment binding (which function receives its events, with its subscriptions and delivery settings) is
written only by the deploy path, never through the registry's HTTP API. Locally that path is ``soorma local deploy``:
it creates the function (``PUT /_local/functions/{name}``, which records the platform tenant the function is deployed
for), registers the agent through the API without a binding, then calls this route — authenticated with the stack's
control token, like every ``/_local`` route — which writes the binding:

* body ``{"agent_id": str, "deployment": {transport, subscriptions, batch_size, max_concurrency, max_deliveries,
  timeout_seconds}}`` (:class:`soorma.functions.registry.models.Deployment` without ``function_name``, or with the
  path's own name);
* the binding's function is always ``{name}``, and it is written into the agent of the platform tenant the function
  was deployed for — so a binding can never point one tenant's agent at another tenant's function;
* answers 200 ``{"agent_id", "function_name", "platform_tenant_id"}``; 401 without the control token; 404 for an
  unknown function or an agent that tenant has not registered; 400 for a platform function or a ``function_name``
  other than ``{name}``; 422 for an invalid body.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from soorma.local.stack import LocalStack

DEPLOYER = "soorma-deployer"


class BindingSpec(BaseModel):
    """Body of ``PUT /_local/functions/{name}/binding``."""

    agent_id: str = Field(min_length=1, max_length=255)
    deployment: dict[str, Any]


def write_binding(app_dsn: str, platform_tenant_id: str, agent_id: str, deployment: dict[str, Any]) -> bool:
    """Set the deployment binding of agent ``agent_id`` of ``platform_tenant_id`` (as role ``soorma_app`` with that
    tenant's identity: row-level security confines the update to it). Returns False when the agent does not exist."""
    from psycopg.types.json import Jsonb

    from soorma.functions.shared.db import Database
    from soorma.identity import Identity

    db = Database(app_dsn)
    try:
        identity = Identity(platform_tenant_id, platform_tenant_id, DEPLOYER, DEPLOYER, "admin")
        with db.transaction(identity) as conn:
            row = conn.execute(
                "update registry.agents set deployment = %s, updated_at = now() where agent_id = %s"
                " returning agent_id",
                (Jsonb(deployment), agent_id),
            ).fetchone()
        return row is not None
    finally:
        db.close()


def binding_route(stack: "LocalStack", authorized: Callable[[Request], bool]) -> Route:
    """The ``PUT /_local/functions/{name}/binding`` route of ``stack`` (see the module docstring)."""
    from soorma.functions.registry.models import Deployment

    async def put_binding(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"detail": "control token required"}, status_code=401)
        name = request.path_params["name"]
        tenant = stack.function_tenant(name)
        if tenant is None:
            return JSONResponse({"detail": f"no agent function {name!r} is deployed on this stack"}, status_code=404)
        try:
            spec = BindingSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)
        given = spec.deployment.get("function_name")
        if given not in (None, name):
            return JSONResponse({"detail": f"a binding of function {name!r} cannot name function {given!r}"},
                                status_code=400)
        try:
            deployment = Deployment.model_validate({**spec.deployment, "function_name": name})
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)
        written = await asyncio.to_thread(write_binding, stack.app_dsn, tenant, spec.agent_id,
                                          deployment.model_dump(mode="json"))
        if not written:
            return JSONResponse({"detail": f"agent {spec.agent_id!r} is not registered in platform tenant {tenant!r}"},
                                status_code=404)
        return JSONResponse({"agent_id": spec.agent_id, "function_name": name, "platform_tenant_id": tenant})

    return Route("/_local/functions/{name}/binding", put_binding, methods=["PUT"])
