"""Typed results: what every front door returns for one image, page or document.

vLLM's ``RequestOutput`` is converted in exactly one place, this module
(:meth:`Generation.from_vllm` for a finished request, :meth:`TokenDelta.from_vllm`
for a streamed step); everything downstream reads these models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChunkSummary",
    "ExtractionDelta",
    "ExtractionResult",
    "FieldConflict",
    "FieldError",
    "Generation",
    "InputWarning",
    "TokenDelta",
    "TokenInfo",
    "Timings",
    "Usage",
    "tokens_from_vllm",
]


class FieldError(BaseModel):
    """One reason an output does not conform to the task's schema."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Where, as a field path such as 'line_items[2].amount' ('' for the root).")
    message: str

    def describe(self) -> str:
        """One line for people: ``'line_items[2].amount: -1 is less than 0'``; the root is ``(root)``."""
        return f"{self.path or '(root)'}: {self.message}"


class InputWarning(BaseModel):
    """Something about an input that did not stop its extraction but may explain a poor result:
    ``blank_page`` (the page is one uniform colour in every renderer tried), ``upscaled`` (the
    image was smaller than the model's minimum and was scaled up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="Stable name of the warning: 'blank_page' or 'upscaled'.")
    message: str = Field(description="One line for people, naming the input and the page.")
    page: int | None = Field(default=None, description="1-based page it concerns (None for a single image).")


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
    tokens: list[TokenInfo] | None = None

    @classmethod
    def from_vllm(cls, output: Any, top_k: int = 0) -> Generation:
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
            tokens=tokens_from_vllm(completion, top_k) if completion.logprobs is not None else None,
            usage=Usage(
                prompt_tokens=len(output.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids or []),
            ),
            queue_s=queue_s,
            first_token_s=first_token_s,
        )


class TokenInfo(BaseModel):
    """One generated token: its id, its text and the log-probability the model gave it."""

    model_config = ConfigDict(extra="forbid")

    id: int
    text: str
    logprob: float | None = None
    top: list[TokenInfo] | None = Field(
        default=None, description="The most likely tokens at this position, most likely first (top_logprobs)."
    )


def tokens_from_vllm(completion: Any, top_k: int = 0) -> list[TokenInfo]:
    """The tokens of a vLLM ``CompletionOutput`` (this step's, for a delta output), with the
    sampled tokens' log-probabilities when the request asked for them (``logprobs=k``: also the
    k most likely tokens at each position)."""
    logprobs = completion.logprobs
    out = []
    for i, token_id in enumerate(completion.token_ids or []):
        position = logprobs[i] if logprobs is not None and i < len(logprobs) else None
        entry = position.get(token_id) if position else None
        top = None
        if position and top_k:
            # vLLM sends the k most likely tokens and, when it is not among them, the sampled one.
            ranked = sorted(position.items(), key=lambda item: item[1].rank or 0)
            top = [TokenInfo(id=tid, text=lp.decoded_token or "", logprob=lp.logprob) for tid, lp in ranked[:top_k]]
        out.append(
            TokenInfo(
                id=token_id,
                text=(entry.decoded_token or "") if entry is not None else "",
                logprob=entry.logprob if entry is not None else None,
                top=top,
            )
        )
    return out


class TokenDelta(BaseModel):
    """One streamed step of a request: the new text and how many tokens it took."""

    model_config = ConfigDict(extra="forbid")

    text: str
    tokens: list[TokenInfo]
    prompt_tokens: int
    finish_reason: str | None = None

    @classmethod
    def from_vllm(cls, output: Any, top_k: int = 0) -> TokenDelta:
        """Convert a vLLM ``RequestOutput`` of ``RequestOutputKind.DELTA`` (this step's tokens only)."""
        completion = output.outputs[0]
        return cls(
            text=completion.text,
            tokens=tokens_from_vllm(completion, top_k),
            prompt_tokens=len(output.prompt_token_ids or []),
            finish_reason=completion.finish_reason,
        )


class FieldConflict(BaseModel):
    """Chunks of one document that gave different non-null values for one field."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The field, as a JSON path ('total', 'supplier.name').")
    values: list[Any] = Field(description="Each chunk's non-null value, in page order.")
    pages: list[list[int]] = Field(description="The pages of the chunk that gave each value.")
    chosen: Any = Field(default=None, description="The value kept (the most confident; the earliest on a tie).")


class ChunkSummary(BaseModel):
    """One chunk of consecutive pages of a document longer than one prompt."""

    model_config = ConfigDict(extra="forbid")

    pages: list[int]
    valid: bool | None = None
    error: str | None = None
    error_kind: str | None = None
    usage: Usage = Field(default_factory=Usage)


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
    valid: bool | None = Field(
        default=False, description="Whether data conforms to the schema; None for free text (no schema)."
    )
    errors: list[FieldError] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why there is no output, when there is none.")
    error_kind: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    tokens: list[TokenInfo] | None = Field(
        default=None, description="Each generated token with its log-probability, when the request asked."
    )
    backend: str | None = Field(
        default=None, description="The grammar backend that constrained the output; None for free text."
    )
    validated_after: list[str] = Field(
        default_factory=list,
        description="'<path>: <keyword>' of each schema keyword the grammar left to the check after generation.",
    )
    warnings: list[InputWarning] = Field(
        default_factory=list, description="What preprocessing noticed about the input (blank pages, upscaling)."
    )
    confidence: dict[str, float] | None = Field(
        default=None,
        description="Per leaf value (JSON path -> [0, 1]): the probability of the tokens that wrote it "
        "(docextract.confidence); None when not computed.",
    )
    min_confidence: float | None = Field(default=None, description="The lowest field confidence of this result.")
    review: list[str] = Field(
        default_factory=list, description="Paths whose confidence is below the review threshold: check these by hand."
    )
    forced: list[str] = Field(
        default_factory=list, description="Paths the grammar left one way to write: their score says nothing."
    )
    sources: dict[str, list[int]] | None = Field(
        default=None,
        description="Document mode: per non-null leaf value (JSON path), the pages it came from; from one prompt "
        "that is every page of the prompt (the model does not say which page it read). None in per-page mode.",
    )
    conflicts: list[FieldConflict] = Field(
        default_factory=list, description="Values on which a long document's chunks disagreed (docextract.merge)."
    )
    chunks: list[ChunkSummary] | None = Field(
        default=None,
        description="A document longer than one prompt: each chunk's pages and outcome, in page order; "
        "None when the whole document fitted one prompt.",
    )
    merge: str | None = Field(
        default=None, description="How the chunks were merged ('deterministic' or 'model'); None for one prompt."
    )


class ExtractionDelta(BaseModel):
    """A piece of a streamed extraction: new raw text, and on the last piece the whole
    :class:`ExtractionResult` (validated, mapped back, with usage and timings)."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    tokens: list[TokenInfo] = Field(default_factory=list, description="The tokens that wrote ``text``.")
    result: ExtractionResult | None = None
