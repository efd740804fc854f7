"""The one internal request every front door builds.

The CLI, ``/v1/extract``, OpenAI chat completions, TGI's routes and the batch job each
translate what they received into an :class:`ExtractionRequest` and hand it to
:meth:`ExtractionEngine.run <docextract.engine.ExtractionEngine.run>` (or ``run_stream``);
nothing else in a door builds prompts, runs vLLM or validates output. The engine answers
with an :class:`~docextract.results.ExtractionResult`, streamed as
:class:`~docextract.results.ExtractionDelta` objects whose last one carries the result.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from docextract.config import SamplingConfig
from docextract.results import InputWarning
from docextract.tasks import TaskSpec

__all__ = ["ExtractionRequest"]


class ExtractionRequest(BaseModel):
    """Pages (or chat messages with image placeholders) and the task to extract from them.

    Without ``messages`` the prompt is the task's own (instructions, schema, page numbers,
    :func:`docextract.prompts.build_messages`); with them it is the client's conversation,
    whose image parts are ``{"type": "image"}`` placeholders filled by ``images`` in order.
    Either way the model's chat template renders it and the task's schema constrains it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    task: TaskSpec | None = Field(
        description="The task whose schema constrains the answer; None generates free text (no validity claimed)."
    )
    images: list[Any] = Field(default_factory=list, description="Model-ready RGB PIL images, in prompt order.")
    messages: list[dict[str, Any]] | None = Field(
        default=None, description="A client's chat messages; None builds the task's own prompt."
    )
    source: str = Field(default="request", description="Names the input in the result (file name, 'chat').")
    pages: list[int] = Field(default_factory=list, description="1-based PDF pages the images are ([] otherwise).")
    id: str | None = Field(default=None, description="The result's id; default derived from source and pages.")
    sampling: SamplingConfig | None = None
    preprocess_s: float = Field(default=0.0, description="Time the door spent loading the inputs, for timings.")
    logprobs: bool = Field(default=False, description="Return each generated token with its log-probability.")
    top_logprobs: int = Field(default=0, ge=0, le=20, description="With logprobs: the most likely tokens per position.")
    warnings: list[InputWarning] = Field(
        default_factory=list, description="What preprocessing noticed about the inputs; copied into the result."
    )
