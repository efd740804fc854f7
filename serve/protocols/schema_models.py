"""Request and response models of ``POST /v1/schema/check`` (:mod:`.schema`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docextract.schema.compiler import CoverageEntry, SchemaReport

__all__ = ["SchemaCheckRequest", "SchemaCheckResponse"]


class SchemaCheckRequest(BaseModel):
    """A JSON Schema (or a built-in task's name) to check, for a backend."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    json_schema: Any | None = Field(default=None, alias="schema", description="The JSON Schema to check.")
    task: str | None = Field(default=None, description="A built-in task whose schema to check, instead of `schema`.")
    structured_output_backend: Literal["xgrammar", "guidance"] | None = Field(
        default=None, description="The backend to check for; default: the served model's."
    )
    model: str | None = Field(default=None, description="The served model whose backend is the default.")

    @model_validator(mode="after")
    def _one_source(self) -> SchemaCheckRequest:
        if (self.json_schema is None) == (self.task is None):
            raise ValueError("give exactly one of 'schema' and 'task'")
        return self


class SchemaCheckResponse(BaseModel):
    """The schema compiler's report: what the grammar enforces, what is validated after, what is refused."""

    backend: str
    accepted: bool
    refused_reason: str | None = None
    draft: str | None = None
    fallback: str | None = None
    fallback_reason: str | None = None
    bundled: list[str] = Field(default_factory=list, description="Schema-store documents bundled under $defs.")
    counts: dict[str, int]
    validated_after: list[str]
    coverage: list[CoverageEntry]
    engine_schema: Any | None = None

    @classmethod
    def from_report(cls, report: SchemaReport) -> SchemaCheckResponse:
        from docextract.schema.report import report_json

        return cls.model_validate(report_json(report))
