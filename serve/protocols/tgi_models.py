"""Text Generation Inference's ``POST /generate``, for clients written against TGI.

TGI's vision models take images as markdown inside ``inputs``
(``"![](data:image/png;base64,...)What is this?"``) and a JSON Schema as
``parameters.grammar = {"type": "json", "value": schema}``. Here the text and
images of ``inputs`` become one user message rendered with the model's own
chat template (TGI feeds ``inputs`` raw; a chat template is what the model was
trained on), and the grammar is required, as on every route of this service:
``regex`` grammars are refused (400). Answers ``{"generated_text": ...}`` with
the same strict-JSON content rules as the chat route
(:func:`serve.protocols.openai_models.answer_content`), and ``details`` (finish reason,
token counts) when asked for.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docextract.errors import SchemaError
from serve.errors import ApiError

__all__ = ["TgiRequest", "TgiResponse", "split_markdown_images", "tgi_messages"]

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


class TgiParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    grammar: TgiGrammar | None = None
    max_new_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    repetition_penalty: float | None = Field(default=None, gt=0, le=2)
    seed: int | None = None
    do_sample: bool = False
    details: bool = False

    def sampling_overrides(self) -> dict[str, Any]:
        values = {
            "max_tokens": self.max_new_tokens,
            # TGI samples only with do_sample; otherwise it decodes greedily, whatever the temperature.
            "temperature": (self.temperature if self.temperature is not None else 1.0) if self.do_sample else 0.0,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }
        return {k: v for k, v in values.items() if v is not None}


class TgiRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: str = Field(min_length=1)
    parameters: TgiParameters = Field(default_factory=TgiParameters)
    stream: bool = False
    model: str | None = Field(default=None, description="docextract addition: a served model name.")

    def grammar_schema(self) -> dict[str, Any]:
        """The JSON Schema of ``parameters.grammar`` (400 without one, 422 if not an object)."""
        grammar = self.parameters.grammar
        if grammar is None or grammar.type not in ("json", "json_object"):
            got = "none" if grammar is None else f"a {grammar.type!r} grammar"
            raise ApiError(
                400,
                f'this service answers JSON under a schema: give parameters.grammar = {{"type": "json", "value": '
                f"<JSON Schema>}} (got {got})",
                kind="grammar_required",
                param="parameters.grammar",
            )
        if not isinstance(grammar.value, dict):
            raise SchemaError(
                f"parameters.grammar.value must be a JSON Schema object, got {type(grammar.value).__name__}"
            )
        return grammar.value


class TgiDetails(BaseModel):
    finish_reason: str
    generated_tokens: int
    prompt_tokens: int
    seed: int | None = None


class TgiResponse(BaseModel):
    generated_text: str
    details: TgiDetails | None = None


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
