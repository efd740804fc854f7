"""Typed results: what every front door returns for one image, page or document.

vLLM's ``RequestOutput`` is converted in exactly one place, this module
(:meth:`Generation.from_vllm` for a finished request, :meth:`TokenDelta.from_vllm`
for a streamed step); everything downstream reads these models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExtractionDelta", "ExtractionResult", "FieldError", "Generation", "TokenDelta", "Timings", "Usage"]


class FieldError(BaseModel):
    """One reason an output does not conform to the task's schema."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Where, as a field path such as 'line_items[2].amount' ('' for the root).")
    message: str

    def describe(self) -> str:
        """One line for people: ``'line_items[2].amount: -1 is less than 0'``; the root is ``(root)``."""
        return f"{self.path or '(root)'}: {self.message}"


class Usage(BaseModel):
    """Token counts, as in OpenAI's ``usage``."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Timings(BaseModel):
    """Seconds spent in each stage."""

    model_config = ConfigDict(extra="forbid")

    preprocess_s: float = 0.0
    queue_s: float | None = Field(default=None, description="Waiting in the engine's queue.")
    first_token_s: float | None = Field(default=None, description="From submission to the first token.")
    generation_s: float = Field(default=0.0, description="From submission to the last token.")
    total_s: float = 0.0


class Generation(BaseModel):
    """The engine's answer to one prompt, before validation."""

    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: str | None
    usage: Usage
    queue_s: float | None = None
    first_token_s: float | None = None

    @classmethod
    def from_vllm(cls, output: Any) -> Generation:
        """Convert a finished vLLM ``RequestOutput`` (the only place that knows its shape)."""
        completion = output.outputs[0]
        metrics = getattr(output, "metrics", None)
        queue_s = first_token_s = None
        if metrics is not None:
            if getattr(metrics, "scheduled_ts", 0) and getattr(metrics, "queued_ts", 0):
                queue_s = max(0.0, metrics.scheduled_ts - metrics.queued_ts)
            first_token_s = getattr(metrics, "first_token_latency", None) or None
        return cls(
            text=completion.text,
            finish_reason=completion.finish_reason,
            usage=Usage(
                prompt_tokens=len(output.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids or []),
            ),
            queue_s=queue_s,
            first_token_s=first_token_s,
        )


class TokenDelta(BaseModel):
    """One streamed step of a request: the new text and how many tokens it took."""

    model_config = ConfigDict(extra="forbid")

    text: str
    tokens: int
    prompt_tokens: int
    finish_reason: str | None = None

    @classmethod
    def from_vllm(cls, output: Any) -> TokenDelta:
        """Convert a vLLM ``RequestOutput`` of ``RequestOutputKind.DELTA`` (this step's tokens only)."""
        completion = output.outputs[0]
        return cls(
            text=completion.text,
            tokens=len(completion.token_ids or []),
            prompt_tokens=len(output.prompt_token_ids or []),
            finish_reason=completion.finish_reason,
        )


class ExtractionResult(BaseModel):
    """The result for one image, one PDF page, or one whole document.

    ``data`` is the parsed output mapped back to the task's schema; ``valid``
    says whether it conforms (checked again after generation). A result can be
    invalid yet carry ``data`` (e.g. a value the grammar allowed but the schema
    forbids); a result cut by ``max_tokens`` is always invalid and never repaired.
    ``error`` is set when no generation happened (bad input, engine failure).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    id: str = Field(description="Stable id: the source name, plus '#page=N' for a page of a PDF.")
    source: str = Field(description="File name or other label of the input.")
    pages: list[int] = Field(default_factory=list, description="1-based PDF pages in this result ([] for an image).")
    task: str
    task_version: str
    model: str
    data: Any | None = None
    raw_text: str = ""
    valid: bool = False
    errors: list[FieldError] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why there is no output, when there is none.")
    error_kind: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)


class ExtractionDelta(BaseModel):
    """A piece of a streamed extraction: new raw text, and on the last piece the whole
    :class:`ExtractionResult` (validated, mapped back, with usage and timings)."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    result: ExtractionResult | None = None
