"""The replica: one :class:`~docextract.engine.ExtractionEngine` per Serve replica.

The replica receives work that is already preprocessed (pages as RGB images
within the model's pixel budget, a checked task or schema) and only runs the
engine, so its event loop does nothing but feed vLLM: decoding, PDF
rendering, schema checks and URL fetches happen in the ingress
(:mod:`serve.ingress`), and a bad input is refused there without taking a
slot in this replica's queue. What crosses the handle is typed (the ``*Call``
models below, :class:`ExtractionResult`, :class:`Generation`).

Serve's health check calls :meth:`ExtractorReplica.check_health`, which asks
the engine; a dead engine makes Serve replace the replica. A request that
fails raises for that request only (the engine maps vLLM's per-request errors
to :class:`~docextract.errors.InputError`), so a bad request never takes the
replica down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from docextract.config import ExtractionConfig, SamplingConfig
from docextract.documents import Document
from docextract.engine import DocumentMode
from docextract.results import ExtractionResult, Generation, Usage
from docextract.tasks import TaskSpec

__all__ = ["ChatCall", "ExtractCall", "ExtractorReplica", "StreamDelta"]


class ExtractCall(BaseModel):
    """Extract ``task`` from a loaded document (per page or as a whole)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    document: Document
    task: TaskSpec
    mode: DocumentMode = "per_page"
    sampling: SamplingConfig | None = None
    preprocess_s: float = 0.0


class ChatCall(BaseModel):
    """Generate under ``schema`` for chat messages whose images are ``{"type": "image"}`` placeholders."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    messages: list[dict[str, Any]]
    images: list[Any] = Field(default_factory=list, description="PIL images, in placeholder order.")
    engine_schema: dict[str, Any]
    sampling: SamplingConfig | None = None


class StreamDelta(BaseModel):
    """New text of a streamed generation; the last one has ``finish_reason`` and ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


class ExtractorReplica:
    """A Serve replica holding one engine. Deployed by :func:`serve.app.build_app`."""

    def __init__(self, config: ExtractionConfig) -> None:
        from docextract.engine import ExtractionEngine

        self.engine = ExtractionEngine(config)

    async def extract(self, call: ExtractCall) -> list[ExtractionResult]:
        return await self.engine.extract_document(
            call.document, call.task, mode=call.mode, sampling=call.sampling, preprocess_s=call.preprocess_s
        )

    async def generate(self, call: ChatCall) -> Generation:
        prompt = self.engine.prompt_from_messages(call.messages, call.images)
        return await self.engine.generate(prompt, call.engine_schema, call.sampling)

    async def stream(self, call: ChatCall) -> AsyncIterator[StreamDelta]:
        prompt = self.engine.prompt_from_messages(call.messages, call.images)
        prompt_tokens = completion_tokens = 0
        async for text, finish_reason, output in self.engine.stream(prompt, call.engine_schema, call.sampling):
            # Delta outputs carry this step's tokens only; the prompt is the same in each.
            prompt_tokens = max(prompt_tokens, len(output.prompt_token_ids or []))
            completion_tokens += len(output.outputs[0].token_ids or [])
            usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens) if finish_reason else None
            yield StreamDelta(text=text, finish_reason=finish_reason, usage=usage)

    async def ready(self) -> str:
        """For the ingress's ``/healthz``: raises unless the engine answers."""
        await self.engine.check_health()
        return self.engine.model_name

    async def check_health(self) -> None:
        """Serve's periodic health check: a dead engine fails it and Serve replaces the replica."""
        await self.engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
