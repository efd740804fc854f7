"""OpenAI's chat completions API: request and response models, and the translation to the engine.

Choices (each where a client would look for it):

* **A schema is enforced when given.** ``response_format`` ``json_schema`` (checked
  with the project's schema checks, 422 when unsupported) or ``json_object`` (any JSON
  object) constrains the answer; ``text`` or none generates free text (no validity
  claimed), unless the service sets ``require_schema``, which makes it a 400. The engine enforces the same derived
  schema as ``/v1/extract`` (optional properties become nullable, see
  :mod:`docextract.schema.transform`).
* **Content is strict JSON.** A non-streamed answer that validates is the
  parsed value mapped back to *your* schema, re-serialised (so an optional
  property the model left ``null`` is absent again where your schema does not
  allow ``null``). An invalid one (cut by ``max_tokens``) is the raw text.
  Streamed deltas are the raw text with raw control characters inside strings
  escaped on the fly (:class:`StrictJsonStream`; xgrammar admits them), so the
  concatenation is strict JSON; they cannot be mapped back while streaming, so
  an optional, non-nullable property may appear there as ``null``. For schemas
  whose properties are all required (what OpenAI's ``strict`` mode demands)
  the two are identical.
* **Images** are ``image_url`` parts: data URIs, or http(s) URLs when the
  service allows URL fetching. Parts become ``{"type": "image"}``
  placeholders and the model's chat template places them
  (:meth:`ExtractionEngine.prompt_for`).
* **Unknown parameters are ignored**, as OpenAI-compatible servers commonly
  do, except those whose silent loss would change the answer: ``n`` > 1,
  ``tools`` are refused. ``logprobs``/``top_logprobs`` return OpenAI's shape
  (:func:`openai_logprobs`); the per-field confidence is in the ``docextract`` object.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docextract.results import Usage
from docextract.tasks import TaskSpec, task_from_schema, task_slug
from serve.errors import ApiError

__all__ = [
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatCompletionChunk",
    "StrictJsonStream",
    "chat_messages",
    "openai_logprobs",
    "response_task",
]

#: The schema ``response_format: {"type": "json_object"}`` stands for.
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


# --- requests -------------------------------------------------------------------------------


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    detail: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["json_schema", "json_object", "text"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError('response_format of type "json_schema" needs a "json_schema" object with a "schema"')
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request the service honours (other fields are ignored, see the module doc)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, description="A served model name; the default model when omitted.")
    messages: list[ChatMessage] = Field(min_length=1)
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(default=1, ge=1, description="Choices per request; only 1 is supported.")
    tools: list[Any] | None = Field(default=None, description="Tool calls are not supported.")
    logprobs: bool | None = Field(default=None, description="Return each token's log-probability (OpenAI's shape).")
    top_logprobs: int | None = Field(default=None, ge=0, le=20, description="With logprobs: alternatives per token.")

    @model_validator(mode="after")
    def _refuse_what_would_be_lost(self) -> ChatCompletionRequest:
        if self.n != 1:
            raise ValueError("n must be 1: one choice per request")
        if self.tools:
            raise ValueError("tools (function calling) are not supported; ask for JSON with response_format")
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def sampling_overrides(self) -> dict[str, Any]:
        values = {
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        return {k: v for k, v in values.items() if v is not None}


# --- responses ------------------------------------------------------------------------------


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> UsageOut:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut
    docextract: Any = Field(default=None, description="docextract's addition: validity of the answer.")


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = None
    docextract: Any = Field(default=None, description="On the last chunk: validity of the whole answer.")


def openai_logprobs(tokens: list[Any] | None) -> dict[str, Any] | None:
    """Tokens (:class:`~docextract.results.TokenInfo`) as OpenAI's ``choices[].logprobs``."""
    if tokens is None:
        return None

    def entry(token: Any) -> dict[str, Any]:
        # A token the grammar forbids has probability 0 (-inf), which JSON cannot carry: OpenAI's -9999.
        logprob = token.logprob if token.logprob is not None and token.logprob > -9999.0 else -9999.0
        return {"token": token.text, "logprob": logprob, "bytes": list(token.text.encode("utf-8"))}

    return {"content": [{**entry(t), "top_logprobs": [entry(a) for a in t.top or []]} for t in tokens]}


def completion_id() -> tuple[str, int]:
    return f"chatcmpl-{uuid.uuid4().hex}", int(time.time())


# --- translation ----------------------------------------------------------------------------


def response_task(
    fmt: ResponseFormat | None,
    backend: str,
    *,
    require_schema: bool = False,
    schema_store: Sequence[str] | None = None,
) -> TaskSpec | None:
    """The task (schema, checked for ``backend``, references to other documents resolved from
    ``schema_store``) a ``response_format`` asks for; None for free text.

    Raises:
        ApiError: 400 without a schema when the service requires one (``require_schema``).
        SchemaError: the schema is invalid or unsupported (422).
    """
    if fmt is None or fmt.type == "text":
        if not require_schema:
            return None
        raise ApiError(
            400,
            "this service answers JSON under a schema: set response_format to "
            '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}} (or {"type": "json_object"})',
            kind="response_format_required",
            param="response_format",
        )
    if fmt.type == "json_object":
        return task_from_schema(JSON_OBJECT_SCHEMA, name="json_object", backend=backend)  # type: ignore[arg-type]
    spec = fmt.json_schema
    assert spec is not None  # checked by ResponseFormat
    name = task_slug(spec.name, default="response")
    return task_from_schema(spec.schema_, name=name, backend=backend, schema_store=schema_store)  # type: ignore[arg-type]


def chat_messages(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[str]]:
    """Hugging Face multimodal messages (images as ``{"type": "image"}``) and the image URLs, in order."""
    out: list[dict[str, Any]] = []
    images: list[str] = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        parts: list[dict[str, Any]] = []
        if isinstance(message.content, str):
            parts.append({"type": "text", "text": message.content})
        for part in message.content if isinstance(message.content, list) else []:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            else:
                parts.append({"type": "image"})
                images.append(part.image_url.url)
        out.append({"role": role, "content": parts})
    if not any(m["role"] == "user" for m in out):
        raise ApiError(400, "messages need at least one user message", kind="invalid_request", param="messages")
    return out, images


def answer_content(text: str, data: Any, valid: bool) -> str:
    """The assistant's content: the validated value as strict JSON, or the raw text made strict."""
    if valid:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return StrictJsonStream().feed(text)


class StrictJsonStream:
    """Escapes raw control characters inside JSON strings, chunk by chunk.

    xgrammar's string rule admits raw control characters (see
    :mod:`docextract.validate`), which strict JSON parsers, Python's
    ``json.loads`` among them, refuse. Escaping them inside strings gives the
    same value in strict JSON; outside strings they are left alone (only JSON
    whitespace can be there). State carries across chunks, so a delta that
    ends inside a string or after a backslash is handled.
    """

    def __init__(self) -> None:
        self._in_string = False
        self._escaped = False

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_string = False
                elif ord(ch) < 0x20:
                    out.append(f"\\u{ord(ch):04x}")
                    continue
            elif ch == '"':
                self._in_string = True
            out.append(ch)
        return "".join(out)
