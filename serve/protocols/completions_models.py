"""OpenAI's legacy completions (``POST /v1/completions``): request and response models.

The prompt is text with TGI's markdown images (``![](data:...)``), as TGI's own OpenAI layer
and ``@huggingface/inference`` send it; a schema comes as ``response_format`` (OpenAI) or as
TGI's ``grammar``; without either the model writes free text. ``model`` may be a served name
or, as ``@huggingface/inference`` sends, the endpoint's URL, which means the default model.
Streamed chunks carry OpenAI's ``choices[0].text`` and, for TGI-style readers, ``token.text``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve.protocols.openai_models import ResponseFormat, UsageOut
from serve.protocols.tgi_models import TgiGrammar, TgiToken

__all__ = ["CompletionChoice", "CompletionChunk", "CompletionRequest", "CompletionResponse", "completion_id"]


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(default=1, ge=1)
    logprobs: int | None = None
    echo: bool = False
    response_format: ResponseFormat | None = None
    grammar: TgiGrammar | None = None

    @model_validator(mode="after")
    def _refuse_what_would_be_lost(self) -> CompletionRequest:
        if self.n != 1:
            raise ValueError("n must be 1: one choice per request")
        if self.logprobs:
            raise ValueError("logprobs are not returned on /v1/completions; use TGI's /generate with details")
        if self.echo:
            raise ValueError("echo is not supported")
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("give one prompt per request")
        if self.response_format is not None and self.grammar is not None:
            raise ValueError("give response_format or grammar, not both")
        return self

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    @property
    def served_name(self) -> str | None:
        """The model asked for; an endpoint URL (``@huggingface/inference``) means the default model."""
        if self.model is None or self.model.startswith(("http://", "https://")):
            return None
        return self.model

    def sampling_overrides(self) -> dict[str, Any]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        values = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "stop": stop or None,
        }
        return {k: v for k, v in values.items() if v is not None}


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut | None = None
    docextract: Any = None


class CompletionChunk(CompletionResponse):
    token: TgiToken | None = None
    generated_text: str | None = None


def completion_id() -> tuple[str, int]:
    return f"cmpl-{uuid.uuid4().hex}", int(time.time())
