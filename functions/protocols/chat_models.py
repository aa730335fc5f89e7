"""Wire models of the OpenAI-compatible chat API (:mod:`soorma.functions.protocols.chat`), written after the OpenAI API
reference (https://platform.openai.com/docs/api-reference/chat, ``POST /v1/chat/completions``, and
https://platform.openai.com/docs/api-reference/models, ``GET /v1/models``); the tests parse every answer with the
``openai.types`` of openai-python 3.60.

Why not the ``openai`` package's own types: they are pydantic models, but importing them imports the whole client
(httpx, anyio, distro, jiter, tqdm, sniffio), which the gateway's Lambda bundle does not otherwise carry. These small
models hold only the fields this gateway reads or writes; the tests check the answers with the ``openai`` client,
which parses them into its own types.

A request's sampling options (``temperature``, ``top_p``, ``max_tokens``, ``tools``, ...) are accepted and ignored:
the agents behind the model decide how they answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

#: Roles a request's message may have (OpenAI's ``ChatCompletionMessageParam`` union).
MessageRole = Literal["system", "developer", "user", "assistant", "tool", "function"]


class TextPart(BaseModel):
    """A content part of type ``text`` (``ChatCompletionContentPartTextParam``). Other part types (images, audio,
    files) are refused with a 400: the goal's data is text."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = Field(max_length=1_000_000)


class ChatMessage(BaseModel):
    """One message of the conversation: ``role`` and ``content`` (a string, a list of text parts, or null for an
    assistant message that only called tools). ``name``, ``tool_calls`` and the like are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    role: MessageRole
    content: str | list[TextPart] | None = Field(None)

    def text(self) -> str:
        """The content as one string: the text parts joined with newlines, ``""`` for no content."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk carrying ``usage`` (and no choices)."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``. ``model`` names a chat entry of the caller's tenant (see
    ``GET /v1/models``); ``messages`` has at least one ``user`` message; ``n`` may only be 1."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(1, ge=1, le=1, description="only one choice is produced")


class AssistantMessage(BaseModel):
    """The answer's message: always ``role`` ``assistant`` and text ``content``."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    """The one choice of a completion (``index`` 0). ``finish_reason`` is ``stop``: the goal completed."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class Usage(BaseModel):
    """Token counts. The platform does not count an agent's tokens, so each is 0 unless the goal's result reports it
    (a ``usage`` object with these integer fields)."""

    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    total_tokens: int = Field(0, ge=0)


class ChatCompletion(BaseModel):
    """``object: "chat.completion"``; ``id`` is ``chatcmpl-<goal id>``, ``created`` the goal's creation (Unix
    seconds), ``model`` the requested model."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: None = None


class Delta(BaseModel):
    """What a chunk adds to the message: the first chunk carries ``role`` and the whole ``content``."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """A chunk's choice: the delta, and ``finish_reason`` on the last content-less chunk."""

    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed completion (``object: "chat.completion.chunk"``); every chunk of one
    completion has the same ``id`` and ``created``. The usage chunk (``stream_options.include_usage``) has no
    choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Model(BaseModel):
    """A model (``object: "model"``): ``id`` the chat entry's name, ``created`` when its agent was registered (Unix
    seconds), ``owned_by`` the agent's id."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """``GET /v1/models``: ``object: "list"`` and the models in ``data``."""

    object: Literal["list"] = "list"
    data: list[Model]


class OpenAIError(BaseModel):
    """OpenAI's error object: ``message`` for people, ``type`` (``invalid_request_error``, ``authentication_error``,
    ``permission_error``, ``not_found_error``, ``rate_limit_error``, ``server_error``, ``timeout_error``), ``param``
    the request field at fault (or null) and ``code`` a machine-readable reason (or null); a goal's errors add
    ``goal_id``."""

    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """Every error answer of the chat routes: ``{"error": {"message", "type", "param", "code"}}``; extra keys (such
    as ``goal_id``) may sit inside ``error``."""

    error: OpenAIError


class ApiGatewayMessage(BaseModel):
    """An answer API Gateway gives itself, before the gateway function runs: ``{"message": "Not Found"}`` (no route),
    ``"Unauthorized"``/``"Forbidden"`` (the authorizer), ``"Too Many Requests"`` (stage throttling). An HTTP API
    cannot reshape them; the ``openai`` client still raises its error class for the status."""

    message: str


class ChatErrorAnswer(RootModel[OpenAIErrorResponse | ApiGatewayMessage]):
    """What an error status of the chat routes can carry: OpenAI's error shape from the gateway function, or API
    Gateway's own :class:`ApiGatewayMessage`."""


def dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON-ready data, as the wire carries it."""
    return model.model_dump(mode="json")
