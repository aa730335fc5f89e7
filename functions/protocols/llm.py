"""The LLM gateway (issue 18 item 4; docs/usage-and-llm.md): agents reach language models through the platform, which
holds each tenant's model credentials, meters every call into the goal's usage and applies the tenant's budget.

Routes (protocols function; every one behind the authorizer, so the per-key and per-tenant token buckets of
:mod:`soorma.functions.gateway.authorizer` rate-limit them like every other request):

* ``POST /v1/llm/chat`` — an OpenAI chat completions request (https://platform.openai.com/docs/api-reference/chat/
  create: ``model`` (optional: the tenant's default), ``messages`` with string contents, ``temperature``,
  ``max_tokens``/``max_completion_tokens``, ``response_format: {"type": "json_object"}``, ``top_p``, ``stop``,
  ``seed``, ``stream``) answered with a ``chat.completion`` object whose ``usage`` holds the provider's token counts.
  Header ``X-Soorma-Goal-Id``: the goal the call is metered into (the SDK sends the goal of the event being handled);
  without it the call is counted as the tenant's usage outside goals. ``stream: true`` is answered as Server-Sent
  Events in OpenAI's chunk format (one ``chat.completion.chunk`` with the whole answer, a final chunk with ``usage``,
  then ``data: [DONE]``): API Gateway HTTP APIs buffer a Lambda's response (no response streaming, unlike a function
  URL or a REST API), so the answer arrives whole either way; clients that only speak streaming still work.
  Refusals: 403 naming the rule ``monthly_budget_usd`` when the tenant's budget is spent; 409 when the tenant has no
  provider; 422 for a malformed request; 502 when the provider failed (its message, never its key).
* ``GET /v1/llm/settings`` (roles ``admin``, ``developer``) — the tenant's provider: ``{"provider", "model",
  "base_url", "has_api_key"}``; the key itself is never returned.
* ``PUT /v1/llm/settings`` (``admin``) — ``{"provider": "bedrock", "model"}`` (Bedrock's Converse API with the
  function's IAM role: no key at all) or ``{"provider": "openai", "model", "base_url", "api_key"}`` (any
  OpenAI-compatible endpoint; the key is written to the Secrets Manager secret ``soorma/llm/<platform tenant>``,
  created on first use, so a deployment whose tenants use Bedrock has no secret and no idle cost). ``base_url`` must
  be ``https`` to a public address (the webhooks' SSRF guard, :mod:`soorma.functions.webhooks.urls`).
* ``DELETE /v1/llm/settings`` (``admin``) — forget the provider and delete the secret.

Agent functions carry no provider key: ``SOORMA_LLM_PROVIDER=platform`` in an agent makes the SDK's LLM interface
(:class:`soorma.ai.llm.PlatformProvider`) call this route with the agent's platform credential.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from soorma._current import GOAL_HEADER
from soorma.ai.llm import BedrockConverseProvider, LLMError, LLMResponse, OpenAICompatibleProvider
from soorma.functions.gateway import policy as policies
from soorma.functions.protocols.chat_models import ChatCompletion
from soorma.functions.shared import settings as function_settings, usage
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.functions.webhooks.urls import UrlRefused, check_resolved, check_url
from soorma.identity import Identity

#: The secret of a tenant's OpenAI-compatible key: ``soorma/llm/<platform tenant id>``.
SECRET_PREFIX = "soorma/llm/"
SETTINGS_ROLES = ("admin", "developer")
#: Request fields passed on to the provider besides messages, temperature, max_tokens and response_format.
PASSED_OPTIONS = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer"]
    content: str = Field(..., max_length=1_000_000)


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat completions request the gateway serves (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=1000)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: dict[str, Any] | None = None
    stream: bool = False
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)


class LlmSettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["bedrock", "openai"]
    model: str = Field(..., min_length=1, max_length=200)
    base_url: str | None = Field(None, max_length=2000)
    api_key: str | None = Field(None, min_length=1, max_length=10_000)


class LlmSettingsOut(BaseModel):
    platform_tenant_id: str
    provider: Literal["bedrock", "openai"]
    model: str
    base_url: str | None = None
    has_api_key: bool


class SecretStore:
    """Tenants' provider keys in AWS Secrets Manager (boto3 ``secretsmanager``; the endpoint from the standard
    ``AWS_ENDPOINT_URL_SECRETS_MANAGER``/``AWS_ENDPOINT_URL`` when set, e.g. moto). ``client``: a ready boto3 client
    (tests). API: https://docs.aws.amazon.com/secretsmanager/latest/apireference/Welcome.html"""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def _secrets(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def put(self, name: str, value: str, tenant: str) -> None:
        """Create ``name`` with ``value`` (tagged with the tenant), or store ``value`` as its new version."""
        client = self._secrets()
        try:
            client.put_secret_value(SecretId=name, SecretString=value)
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=value, Description="LLM provider key of a Soorma tenant",
                                 Tags=[{"Key": "soorma:platform_tenant_id", "Value": tenant}])

    def get(self, name: str) -> str:
        """The secret's current value. Raises ``LookupError`` when it does not exist."""
        client = self._secrets()
        try:
            return str(client.get_secret_value(SecretId=name)["SecretString"])
        except client.exceptions.ResourceNotFoundException:
            raise LookupError(name) from None

    def delete(self, name: str) -> None:
        """Delete the secret at once (no recovery window: the tenant asked to forget the key); absent is fine."""
        client = self._secrets()
        try:
            client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except client.exceptions.ResourceNotFoundException:
            pass


def _allow_loopback() -> bool:
    return function_settings.WEBHOOK_ALLOW_LOOPBACK.get()


def _completion(answer: LLMResponse, model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": answer.model or model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                  "total_tokens": input_tokens + output_tokens},
    }


def _event_stream(completion: dict[str, Any]) -> str:
    """The completion as OpenAI's streamed chunks (https://platform.openai.com/docs/api-reference/chat-streaming)."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    text = completion["choices"][0]["message"]["content"]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": completion["usage"]},
    ]
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


def tokens_of(answer: LLMResponse) -> tuple[int, int]:
    """(input, output) tokens from the provider's own ``usage``: OpenAI's ``prompt_tokens``/``completion_tokens`` or
    Bedrock Converse's ``inputTokens``/``outputTokens``; 0 for what it did not report."""
    reported = answer.usage or {}
    input_tokens = reported.get("prompt_tokens", reported.get("inputTokens", 0))
    output_tokens = reported.get("completion_tokens", reported.get("outputTokens", 0))
    try:
        return max(0, int(input_tokens or 0)), max(0, int(output_tokens or 0))
    except (TypeError, ValueError):
        return 0, 0


ProviderFactory = Callable[[dict[str, Any], str, "str | None"], Any]


def default_provider(row: dict[str, Any], model: str, api_key: str | None) -> Any:
    """The SDK provider (:mod:`soorma.ai.llm`) for a tenant's settings ``row``: Bedrock Converse with the function's
    own IAM role, or the OpenAI-compatible endpoint with the tenant's key."""
    if row["provider"] == "bedrock":
        return BedrockConverseProvider(model, os.environ.get("AWS_REGION"))
    return OpenAICompatibleProvider(model, row["base_url"], api_key)


def create_router(db: Database) -> APIRouter:
    """The LLM gateway's routes (see the module docstring). The app's ``state.llm_secrets`` (default a
    :class:`SecretStore` on boto3) and ``state.llm_provider_factory`` (default :func:`default_provider`) are the AWS
    and provider boundary; tests replace them."""
    router = APIRouter()
    default_store = SecretStore()

    def secrets_of(request: Request) -> SecretStore:
        return getattr(request.app.state, "llm_secrets", None) or default_store

    def _settings_out(row: dict[str, Any]) -> dict[str, Any]:
        return {"platform_tenant_id": row["platform_tenant_id"], "provider": row["provider"], "model": row["model"],
                "base_url": row["base_url"], "has_api_key": bool(row["secret_name"])}

    @router.get("/v1/llm/settings", response_model=LlmSettingsOut, tags=["llm"])
    def get_settings(identity: Identity = Depends(current_identity)):
        """The tenant's LLM provider (never its key)."""
        if identity.role not in SETTINGS_ROLES:
            raise HTTPException(403, f"role {identity.role!r} may not read the LLM settings")
        with db.transaction(identity) as conn:
            row = conn.execute("select * from gateway.llm_settings where platform_tenant_id = %s",
                               (identity.platform_tenant_id,)).fetchone()
        if row is None:
            raise HTTPException(404, "no LLM provider is set for this tenant")
        return _settings_out(row)

    @router.put("/v1/llm/settings", response_model=LlmSettingsOut, tags=["llm"])
    def put_settings(body: LlmSettingsBody, request: Request, identity: Identity = Depends(current_identity)):
        """Set the tenant's LLM provider; an OpenAI-compatible key goes to Secrets Manager, never to the database."""
        if identity.role != "admin":
            raise HTTPException(403, f"role {identity.role!r} may not set the LLM settings (needs admin)")
        store = secrets_of(request)
        secret_name: str | None = None
        base_url: str | None = None
        if body.provider == "openai":
            if not body.base_url:
                raise HTTPException(422, "provider 'openai' needs base_url")
            try:
                base_url = check_url(body.base_url, allow_loopback=_allow_loopback())
            except UrlRefused as exc:
                raise HTTPException(422, f"base_url refused: {exc}") from None
            if body.api_key:
                secret_name = SECRET_PREFIX + identity.platform_tenant_id
                store.put(secret_name, body.api_key, identity.platform_tenant_id)
        elif body.base_url or body.api_key:
            raise HTTPException(422, "provider 'bedrock' takes no base_url or api_key (the platform's IAM role calls it)")
        with db.transaction(identity) as conn:
            previous = conn.execute("select secret_name from gateway.llm_settings where platform_tenant_id = %s",
                                    (identity.platform_tenant_id,)).fetchone()
            if body.provider == "openai" and not body.api_key and previous and previous["secret_name"]:
                secret_name = previous["secret_name"]  # the key stays when only the model or URL changes
            row = conn.execute(
                "insert into gateway.llm_settings (platform_tenant_id, provider, model, base_url, secret_name,"
                " updated_by) values (%s, %s, %s, %s, %s, %s) on conflict (platform_tenant_id) do update set"
                " provider = excluded.provider, model = excluded.model, base_url = excluded.base_url,"
                " secret_name = excluded.secret_name, updated_by = excluded.updated_by, updated_at = now()"
                " returning *",
                (identity.platform_tenant_id, body.provider, body.model, base_url, secret_name,
                 identity.principal_id),
            ).fetchone()
        if previous and previous["secret_name"] and secret_name is None:
            store.delete(previous["secret_name"])  # switched to Bedrock: the key is no longer needed
        return _settings_out(row)

    @router.delete("/v1/llm/settings", status_code=204, tags=["llm"])
    def delete_settings(request: Request, identity: Identity = Depends(current_identity)):
        """Forget the tenant's LLM provider and delete its key's secret."""
        store = secrets_of(request)
        if identity.role != "admin":
            raise HTTPException(403, f"role {identity.role!r} may not delete the LLM settings (needs admin)")
        with db.transaction(identity) as conn:
            row = conn.execute("delete from gateway.llm_settings where platform_tenant_id = %s returning secret_name",
                               (identity.platform_tenant_id,)).fetchone()
        if row and row["secret_name"]:
            store.delete(row["secret_name"])
        return Response(status_code=204)

    @router.post("/v1/llm/chat", tags=["llm"], response_model=ChatCompletion,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": "A completion, or with ``stream`` its chunks"}})
    async def chat(body: ChatRequest, request: Request, identity: Identity = Depends(current_identity),
                   goal_id: str | None = Header(None, alias=GOAL_HEADER, max_length=100)):
        """An OpenAI-compatible chat completion through the tenant's provider, metered into the goal's usage."""
        goal = usage.goal_key(goal_id)
        if goal is None:
            raise HTTPException(422, f"{GOAL_HEADER} must be a goal id (a UUID)")

        def admit() -> dict[str, Any]:
            with db.transaction(identity) as conn:
                policies.check_budget(conn, policies.load(conn, identity.platform_tenant_id))
                row = conn.execute("select * from gateway.llm_settings where platform_tenant_id = %s",
                                   (identity.platform_tenant_id,)).fetchone()
            if row is None:
                raise HTTPException(409, "no LLM provider is set for this tenant (an admin sets one: PUT "
                                         "/v1/llm/settings)")
            return row

        row = await asyncio.to_thread(admit)
        store = secrets_of(request)
        make_provider: ProviderFactory = getattr(request.app.state, "llm_provider_factory", None) or default_provider
        model = body.model or row["model"]
        api_key: str | None = None
        if row["provider"] == "openai":
            try:
                # resolved again before each call (DNS may have changed since the URL was set)
                await asyncio.to_thread(check_resolved, row["base_url"], allow_loopback=_allow_loopback())
            except UrlRefused as exc:
                raise HTTPException(502, f"the tenant's LLM endpoint is refused: {exc}") from None
            if row["secret_name"]:
                try:
                    api_key = await asyncio.to_thread(store.get, row["secret_name"])
                except LookupError:
                    raise HTTPException(409, "the tenant's LLM key is missing; an admin sets it again") from None
        provider = make_provider(row, model, api_key)
        options = {name: getattr(body, name) for name in PASSED_OPTIONS if getattr(body, name) is not None}
        json_mode = bool(body.response_format and body.response_format.get("type") == "json_object")
        try:
            answer = await provider.complete([m.model_dump() for m in body.messages], temperature=body.temperature,
                                             max_tokens=body.max_tokens or body.max_completion_tokens,
                                             json_mode=json_mode, **options)
        except LLMError as exc:
            raise HTTPException(502, f"the LLM provider failed: {str(exc)[:500]}") from None
        input_tokens, output_tokens = tokens_of(answer)

        def meter() -> None:
            with db.transaction(identity) as conn:
                usage.add(conn, identity, goal, input_tokens=input_tokens, output_tokens=output_tokens, model=model)

        await asyncio.to_thread(meter)
        completion = _completion(answer, model, input_tokens, output_tokens)
        if body.stream:
            return Response(_event_stream(completion), media_type="text/event-stream",
                            headers={"Cache-Control": "no-cache"})
        return JSONResponse(completion)

    return router


__all__ = ["GOAL_HEADER", "SECRET_PREFIX", "SecretStore", "create_router", "default_provider", "tokens_of"]
