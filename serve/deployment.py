"""The replica: one :class:`~docextract.engine.ExtractionEngine` per Serve replica.

The replica receives work that is already preprocessed (pages as RGB images
within the model's pixel budget, a checked task or schema) and only runs the
engine, so its event loop does nothing but feed vLLM: decoding, PDF
rendering, schema checks and URL fetches happen in the ingress
(:mod:`serve.ingress`), and a bad input is refused there without taking a
slot in this replica's queue. What crosses the handle is typed (:class:`ExtractCall`,
:class:`~docextract.requests.ExtractionRequest`, :class:`ExtractionResult`, :class:`ExtractionDelta`): the replica
reads no vLLM output itself and validates nothing itself; the engine does both, once.

Serve's health check calls :meth:`ExtractorReplica.check_health`, which asks
the engine; a dead engine makes Serve replace the replica. A request that
fails raises for that request only (the engine maps vLLM's per-request errors
to :class:`~docextract.errors.InputError`), so a bad request never takes the
replica down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict

from docextract.config import PER_PAGE, DocumentMode, ExtractionConfig, SamplingConfig
from docextract.preprocess.documents import Document
from docextract.requests import ExtractionRequest
from docextract.results import ExtractionDelta, ExtractionResult
from docextract.tasks import TaskSpec

__all__ = ["ExtractCall", "ExtractorReplica"]


class ExtractCall(BaseModel):
    """Extract ``task`` from a loaded document (per page or as a whole)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    document: Document
    task: TaskSpec
    mode: DocumentMode = PER_PAGE
    sampling: SamplingConfig | None = None
    preprocess_s: float = 0.0


class ExtractorReplica:
    """A Serve replica holding one engine. Deployed by :func:`serve.app.build_app`."""

    def __init__(self, config: ExtractionConfig) -> None:
        from docextract.engine import ExtractionEngine

        self.engine = ExtractionEngine(config)

    async def extract(self, call: ExtractCall) -> list[ExtractionResult]:
        return await self.engine.extract_document(
            call.document, call.task, mode=call.mode, sampling=call.sampling, preprocess_s=call.preprocess_s
        )

    async def run(self, request: ExtractionRequest) -> ExtractionResult:
        """One request (chat, TGI) through the engine's one extraction path."""
        return await self.engine.run(request)

    async def run_stream(self, request: ExtractionRequest) -> AsyncIterator[ExtractionDelta]:
        """:meth:`run`, streamed: raw text deltas, the last one carrying the result."""
        async for delta in self.engine.run_stream(request):
            yield delta

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
