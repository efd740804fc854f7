"""Text Generation Inference's ``POST /generate``, for clients written against TGI.

TGI's vision models take images as markdown inside ``inputs``
(``"![](data:image/png;base64,...)What is this?"``) and a JSON Schema as
``parameters.grammar = {"type": "json", "value": schema}``. Here the text and
images of ``inputs`` become one user message rendered with the model's own
chat template (TGI feeds ``inputs`` raw; a chat template is what the model was
trained on). Without a grammar the model writes free text (no validity claimed), unless
the service sets ``require_schema``; ``regex`` grammars are refused (400). Answers
``{"generated_text": ...}`` with the same strict-JSON content rules as the chat route
(:func:`serve.protocols.openai_models.answer_content`), ``details`` (finish reason, token
counts, each token with its log-probability) when asked for, and docextract's
``docextract`` object (validity) beside them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docextract.errors import SchemaError
from serve.errors import ApiError

__all__ = [
    "TgiDetails",
    "TgiInfo",
    "TgiRequest",
    "TgiResponse",
    "TgiStreamDetails",
    "TgiStreamEvent",
    "TgiToken",
    "split_markdown_images",
    "tgi_finish_reason",
    "tgi_messages",
]

#: ``![alt](target)``; a target has no whitespace or ``)`` (base64 and data URIs never do).
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)\s*\)")


class TgiGrammar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json", "json_object", "regex", "grammar"]
    value: Any

    @model_validator(mode="after")
    def _json_text(self) -> TgiGrammar:
        # TGI accepts a JSON grammar's schema as an object or as a JSON string.
        if self.type in ("json", "json_object") and isinstance(self.value, str):
            try:
                self.value = json.loads(self.value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"grammar value is not valid JSON: {exc.msg}") from None
        return self

    def json_schema(self, param: str) -> dict[str, Any]:
        """The JSON Schema this grammar stands for: 400 for a grammar type this service does not
        enforce, 422 when the value is not a schema object (``param`` names the field in errors)."""
        if self.type not in ("json", "json_object"):
            raise ApiError(
                400,
                f'{self.type!r} grammars are not supported: give {param} = {{"type": "json", "value": '
                "<JSON Schema>}, or no grammar for free text",
                kind="unsupported_grammar",
                param=param,
            )
        if not isinstance(self.value, dict):
            raise SchemaError(f"{param}.value must be a JSON Schema object, got {type(self.value).__name__}")
        return self.value


class TgiParameters(BaseModel):
    """The ``parameters`` TGI clients send; unknown ones are ignored, as TGI's own router does."""

    model_config = ConfigDict(extra="ignore")

    grammar: TgiGrammar | None = None
    max_new_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    repetition_penalty: float | None = Field(default=None, gt=0, le=2)
    stop: list[str] | None = Field(default=None, max_length=8)
    seed: int | None = None
    do_sample: bool = False
    details: bool = False
    return_full_text: bool | None = False
    best_of: int | None = Field(default=None, ge=1, le=1, description="One sequence per request.")

    def sampling_overrides(self) -> dict[str, Any]:
        values = {
            "max_tokens": self.max_new_tokens,
            # TGI samples only with do_sample; otherwise it decodes greedily, whatever the temperature.
            "temperature": (self.temperature if self.temperature is not None else 1.0) if self.do_sample else 0.0,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
            "stop": self.stop or None,
        }
        return {k: v for k, v in values.items() if v is not None}


class TgiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: str = Field(min_length=1)
    parameters: TgiParameters = Field(default_factory=TgiParameters)
    stream: bool = False
    model: str | None = Field(default=None, description="docextract addition: a served model name.")

    def grammar_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of ``parameters.grammar``: None without a grammar (free text), 400 for a
        grammar type this service does not enforce, 422 when the value is not a schema object."""
        grammar = self.parameters.grammar
        return grammar.json_schema("parameters.grammar") if grammar is not None else None


class TgiToken(BaseModel):
    id: int
    text: str
    logprob: float
    special: bool = False


class TgiDetails(BaseModel):
    finish_reason: str
    generated_tokens: int
    seed: int | None = None
    prefill: list[TgiToken] = Field(default_factory=list)
    tokens: list[TgiToken] = Field(default_factory=list)
    prompt_tokens: int = Field(description="docextract addition: tokens in the prompt, images included.")


class TgiResponse(BaseModel):
    generated_text: str
    details: TgiDetails | None = None
    docextract: Any = None


class TgiStreamDetails(BaseModel):
    finish_reason: str
    generated_tokens: int
    input_length: int
    seed: int | None = None


class TgiStreamEvent(BaseModel):
    """One server-sent event of ``/generate_stream``: a token; the last one also the whole text."""

    index: int
    token: TgiToken
    generated_text: str | None = None
    details: TgiStreamDetails | None = None
    docextract: Any = None


class TgiInfo(BaseModel):
    """``GET /info`` as TGI clients read it (fields TGI has and docextract cannot know are null)."""

    model_id: str
    model_sha: str | None = None
    model_dtype: str
    model_device_type: str
    model_pipeline_tag: str = "image-text-to-text"
    max_concurrent_requests: int
    max_best_of: int = 1
    max_stop_sequences: int = 8
    max_input_tokens: int | None
    max_total_tokens: int | None
    validation_workers: int = 1
    max_client_batch_size: int = 1
    router: str = "docextract"
    version: str
    sha: str | None = None
    docker_label: str | None = None


def split_markdown_images(inputs: str) -> list[tuple[Literal["text", "image"], str]]:
    """``inputs`` as text and image parts in order; empty text between images is dropped."""
    parts: list[tuple[Literal["text", "image"], str]] = []
    at = 0
    for match in MARKDOWN_IMAGE.finditer(inputs):
        if inputs[at : match.start()].strip():
            parts.append(("text", inputs[at : match.start()]))
        parts.append(("image", match.group(1)))
        at = match.end()
    if inputs[at:].strip():
        parts.append(("text", inputs[at:]))
    return parts


def tgi_messages(inputs: str) -> tuple[list[dict[str, Any]], list[str]]:
    """One user message (images as ``{"type": "image"}``) and the image references, in order."""
    content: list[dict[str, Any]] = []
    images: list[str] = []
    for kind, value in split_markdown_images(inputs):
        if kind == "image":
            content.append({"type": "image"})
            images.append(value)
        else:
            content.append({"type": "text", "text": value.strip()})
    return [{"role": "user", "content": content}], images


def tgi_finish_reason(finish_reason: str | None) -> str:
    """TGI's names: ``eos_token`` for a natural stop, ``length`` at the token limit."""
    return {"stop": "eos_token", "length": "length"}.get(finish_reason or "", finish_reason or "eos_token")
