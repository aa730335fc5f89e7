"""LLM access without lock-in: one small interface, two providers, chosen by ``SOORMA_LLM_*`` settings.

* :class:`LLMProvider` — ``await llm.complete(messages, temperature=None, max_tokens=None, json_mode=False,
  **options) -> LLMResponse`` with ``messages`` as ``[{"role": "system"|"user"|"assistant", "content": str}]``.
* :class:`OpenAICompatibleProvider` — ``POST {base_url}/chat/completions`` over httpx (OpenAI, Azure OpenAI's
  v1-compatible endpoint, Ollama, vLLM, LM Studio, LiteLLM proxy, ...).
* :class:`BedrockConverseProvider` — Amazon Bedrock's Converse API through boto3 (``bedrock-runtime``), with the
  function's own AWS credentials (IAM role): no API key at all.
* :class:`PlatformProvider` — the platform's LLM gateway, ``POST {SOORMA_API_URL}/v1/llm/chat`` with the agent's
  platform credential: the platform holds the model credentials (Bedrock by IAM or the tenant's key in Secrets
  Manager) and meters the tokens into the goal of the event being handled, so the agent carries no provider key.
* :func:`provider_from_env` — ``SOORMA_LLM_PROVIDER`` (``openai`` | ``bedrock`` | ``platform``; default ``openai``),
  ``SOORMA_LLM_MODEL``, ``SOORMA_LLM_BASE_URL`` (OpenAI-compatible; default ``https://api.openai.com/v1``),
  ``SOORMA_LLM_API_KEY`` (sent as ``Authorization: Bearer``), ``SOORMA_LLM_REGION`` (Bedrock; default
  ``AWS_REGION``), ``SOORMA_LLM_TIMEOUT`` (seconds, default 60).

The providers only ever send what they are given plus their own LLM key: the platform's API key, the agent's
credentials and the event's identity never go to the LLM.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from .. import settings, telemetry

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
DEFAULT_TIMEOUT_S = settings.LLM_TIMEOUT.default

Message = Mapping[str, str]

#: Keyword options that are never forwarded to a provider: credentials and identity of the platform side.
FORBIDDEN_OPTIONS = frozenset({
    "auth_token", "auth_token_provider", "api_key", "platform_api_key", "soorma_api_key", "context", "tenant_id",
    "user_id", "headers", "extra_headers",
})


class LLMError(RuntimeError):
    """The LLM call failed (network, error status, or an answer without text)."""


@dataclass
class LLMResponse:
    """``text`` of the answer, the ``model`` that produced it, token ``usage`` when reported, the ``raw`` body."""

    text: str
    model: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    raw: Any = None

    def json(self) -> Any:
        """The answer parsed as JSON (fences and prose around one JSON object are tolerated)."""
        return parse_json(self.text)


@runtime_checkable
class LLMProvider(Protocol):
    model: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        **options: Any,
    ) -> LLMResponse: ...


def _clean_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in FORBIDDEN_OPTIONS and v is not None}


class OpenAICompatibleProvider:
    """``OpenAICompatibleProvider(model="gpt-4o-mini", base_url="https://api.openai.com/v1", api_key=None,
    timeout=60, transport=None)``. ``json_mode`` sends ``response_format: {"type": "json_object"}``; extra options
    (``top_p``, ``seed``, ``stop``, ...) go into the request body. Raises :class:`LLMError`."""

    def __init__(self, model: str = DEFAULT_OPENAI_MODEL, base_url: str = DEFAULT_OPENAI_BASE_URL,
                 api_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S, transport: Any = None) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._transport = transport

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatibleProvider(model={self.model!r}, base_url={self.base_url!r})"

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        **options: Any,
    ) -> LLMResponse:
        import httpx

        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        body.update(_clean_options(options))
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            with telemetry.client_span(f"chat {self.model}", {"gen_ai.system": "openai",
                                                               "gen_ai.request.model": self.model}) as span:
                async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as client:
                    response = await client.post(f"{self.base_url}/chat/completions", json=body, headers=headers)
                telemetry.llm_usage(span, response)
        except httpx.HTTPError as exc:
            raise LLMError(f"LLM request to {self.base_url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise LLMError(f"LLM at {self.base_url} answered {response.status_code}: {response.text[:500]}")
        try:
            raw = response.json()
            text = raw["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"unexpected LLM answer from {self.base_url}: {response.text[:500]}") from exc
        if not isinstance(text, str):
            raise LLMError("the LLM answer has no text content")
        return LLMResponse(text=text, model=str(raw.get("model") or self.model), usage=raw.get("usage") or {},
                           raw=raw)


class BedrockConverseProvider:
    """``BedrockConverseProvider(model, region=None, client=None, endpoint_url=None)`` over Bedrock's Converse API
    (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html). ``client``: a ready boto3
    ``bedrock-runtime`` client (tests pass one with a botocore ``Stubber``). System messages become ``system``;
    ``temperature``/``max_tokens`` become ``inferenceConfig``; ``json_mode`` asks for one JSON object in the system
    prompt (Converse has no JSON switch). Extra options go to ``additionalModelRequestFields``."""

    def __init__(self, model: str = DEFAULT_BEDROCK_MODEL, region: str | None = None, *, client: Any = None,
                 endpoint_url: str | None = None) -> None:
        self.model = model
        self.region = region
        self._client = client
        self._endpoint_url = endpoint_url

    def __repr__(self) -> str:
        return f"BedrockConverseProvider(model={self.model!r}, region={self.region!r})"

    def _bedrock(self) -> Any:
        if self._client is None:
            import boto3

            kwargs: dict[str, Any] = {}
            if self.region:
                kwargs["region_name"] = self.region
            if self._endpoint_url:
                kwargs["endpoint_url"] = self._endpoint_url
            self._client = boto3.client("bedrock-runtime", **kwargs)
        return self._client

    def request(self, messages: Sequence[Message], *, temperature: float | None = None,
                max_tokens: int | None = None, json_mode: bool = False, **options: Any) -> dict[str, Any]:
        """The ``converse`` parameters for these arguments."""
        system = [m["content"] for m in messages if m.get("role") == "system"]
        if json_mode:
            system.append("Answer with exactly one JSON object and nothing else.")
        turns: list[dict[str, Any]] = []
        for message in messages:
            role = message.get("role")
            if role == "system":
                continue
            role = "assistant" if role == "assistant" else "user"
            if turns and turns[-1]["role"] == role:  # Converse wants alternating turns
                turns[-1]["content"].append({"text": message["content"]})
            else:
                turns.append({"role": role, "content": [{"text": message["content"]}]})
        params: dict[str, Any] = {"modelId": self.model, "messages": turns}
        if system:
            params["system"] = [{"text": s} for s in system]
        inference: dict[str, Any] = {}
        if temperature is not None:
            inference["temperature"] = temperature
        if max_tokens is not None:
            inference["maxTokens"] = max_tokens
        if inference:
            params["inferenceConfig"] = inference
        extra = _clean_options(options)
        if extra:
            params["additionalModelRequestFields"] = extra
        return params

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        **options: Any,
    ) -> LLMResponse:
        params = self.request(messages, temperature=temperature, max_tokens=max_tokens, json_mode=json_mode,
                              **options)
        client = self._bedrock()
        try:
            with telemetry.client_span(f"chat {self.model}", {"gen_ai.system": "aws.bedrock",
                                                               "gen_ai.request.model": self.model}):
                raw = await asyncio.to_thread(client.converse, **params)
        except Exception as exc:  # botocore ClientError, credentials, network
            raise LLMError(f"Bedrock converse with {self.model} failed: {type(exc).__name__}: {exc}") from exc
        try:
            parts = raw["output"]["message"]["content"]
            text = "".join(p.get("text", "") for p in parts)
        except (KeyError, TypeError) as exc:
            raise LLMError(f"unexpected Bedrock answer: {str(raw)[:500]}") from exc
        usage = raw.get("usage") or {}
        return LLMResponse(text=text, model=self.model, usage=dict(usage), raw=raw)


class PlatformProvider:
    """``PlatformProvider(model=None, platform=None, timeout=60, transport=None)`` over the platform's LLM gateway
    (``POST /v1/llm/chat``, an OpenAI-compatible chat completions request; docs/usage-and-llm.md). ``model``: None
    uses the tenant's default model. ``platform``: where the platform is and the API key
    (:class:`soorma.settings.Settings`, default from the environment). Inside a handler the call acts for the event's
    service tenant and user (its delivery grant) and names its goal (``X-Soorma-Goal-Id``,
    :func:`soorma._current.identity_headers`), so the tokens count in that goal's usage. Raises :class:`LLMError` (the gateway's refusal, e.g. 403 ``monthly_budget_usd``, or the
    provider's failure)."""

    def __init__(self, model: str | None = None, platform: settings.Settings | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S, transport: Any = None) -> None:
        self.settings = platform or settings.Settings.from_env()
        self.model = model or ""
        self.timeout = timeout
        self._transport = transport

    def __repr__(self) -> str:  # never show the key
        return f"PlatformProvider(model={self.model!r}, api_url={self.settings.base_url!r})"

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        **options: Any,
    ) -> LLMResponse:
        import httpx

        from .._current import identity_headers

        body: dict[str, Any] = {"messages": [dict(m) for m in messages]}
        if self.model:
            body["model"] = self.model
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        body.update(_clean_options(options))
        # the agent's platform credential and the handled event's identity, grant and goal (never sent to a model)
        headers = {"Content-Type": "application/json", **identity_headers()}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        url = f"{self.settings.base_url}/v1/llm/chat"
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as client:
                response = await client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise LLMError(f"the platform's LLM gateway at {url} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise LLMError(f"the platform's LLM gateway answered {response.status_code}: {response.text[:500]}")
        try:
            raw = response.json()
        except ValueError as exc:
            raise LLMError(f"unexpected LLM gateway answer: {response.text[:500]}") from exc
        try:
            text = raw["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"unexpected LLM gateway answer: {str(raw)[:500]}") from exc
        if not isinstance(text, str):
            raise LLMError("the LLM gateway's answer has no text content")
        return LLMResponse(text=text, model=str(raw.get("model") or self.model), usage=raw.get("usage") or {},
                           raw=raw)


def provider_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> LLMProvider:
    """The provider the ``SOORMA_LLM_*`` settings describe (see the module docstring). ``overrides``: ``provider``,
    ``model``, ``base_url``, ``api_key``, ``region``, ``timeout``, ``transport``/``client`` (tests)."""
    env = os.environ if env is None else env
    kind = str(overrides.pop("provider", None) or settings.LLM_PROVIDER.get(env)).lower()
    model = overrides.pop("model", None) or settings.LLM_MODEL.get(env)
    timeout = float(overrides.pop("timeout", None) or settings.LLM_TIMEOUT.get(env))
    if kind in ("bedrock", "aws", "bedrock-converse"):
        return BedrockConverseProvider(
            model or DEFAULT_BEDROCK_MODEL,
            overrides.pop("region", None) or settings.LLM_REGION.get(env) or env.get("AWS_REGION"),
            client=overrides.pop("client", None),
            endpoint_url=overrides.pop("endpoint_url", None) or settings.LLM_BASE_URL.get(env) or None,
        )
    if kind == "platform":
        return PlatformProvider(model, settings.Settings.from_env(env), timeout=timeout,
                                transport=overrides.pop("transport", None))
    if kind not in ("openai", "openai-compatible", "openai_compatible"):
        raise ValueError(f"{settings.LLM_PROVIDER.name} must be openai, bedrock or platform, not {kind!r}")
    return OpenAICompatibleProvider(
        model or DEFAULT_OPENAI_MODEL,
        overrides.pop("base_url", None) or settings.LLM_BASE_URL.get(env) or DEFAULT_OPENAI_BASE_URL,
        overrides.pop("api_key", None) or settings.LLM_API_KEY.get(env) or None,
        timeout=timeout,
        transport=overrides.pop("transport", None),
    )


def llm_configured(env: Mapping[str, str] | None = None) -> bool:
    """True when ``SOORMA_LLM_*`` names a provider to use (a base URL, an API key, ``bedrock`` or ``platform``)."""
    env = os.environ if env is None else env
    return bool(settings.LLM_BASE_URL.get(env) or settings.LLM_API_KEY.get(env)
                or settings.LLM_PROVIDER.get(env) in ("bedrock", "platform"))


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_json(text: str) -> Any:
    """Parse an LLM's JSON answer: plain JSON, JSON in a code fence, or the first ``{...}`` object in prose.
    Raises ``ValueError``."""
    stripped = _FENCE.sub("", text.strip()).strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(stripped[start:])
            return value
        except ValueError:
            start = stripped.find("{", start + 1)
    raise ValueError(f"no JSON object in the LLM answer: {text[:200]!r}")


__all__ = [
    "BedrockConverseProvider",
    "LLMError",
    "LLMProvider",
    "LLMResponse",
    "OpenAICompatibleProvider",
    "PlatformProvider",
    "llm_configured",
    "parse_json",
    "provider_from_env",
]
