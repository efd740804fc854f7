"""The native API's request and response models: ``POST /v1/extract``, ``GET /v1/tasks``, ``GET /v1/models``.

``/v1/extract`` takes the document one of two ways, with the same options:

* ``multipart/form-data``: a ``file`` part plus the options as form fields
  (``json_schema`` as JSON text, ``pages`` as ``"1,3-5"``);
* ``application/json``: :class:`ExtractRequest`, the document as a base64
  ``data:`` URI, bare base64, or an http(s) URL (when URL fetching is on).

``include_images: true`` adds ``pages``: each page as the model saw it (after EXIF
rotation, resizing to the pixel budget and PDF rendering), as a PNG or JPEG ``data:`` URI.

A task is a built-in task's name, or an inline ``json_schema`` (+ optional
``instructions``); never a server-side file or import. The answer is
:class:`ExtractResponse`: one :class:`~docextract.results.ExtractionResult`
per page (``mode: per_page``, the default) or one for the whole document
(``mode: document``), each validated against the schema. A page whose
generation failed (e.g. a prompt longer than the context) carries ``error``
in its result, as in the CLI's and the batch's output; the answer is still 200.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from docextract.config import PER_PAGE, DocumentMode
from docextract.errors import InputError
from docextract.results import ExtractionResult
from serve.errors import invalid_request

__all__ = [
    "ExtractOptions",
    "ExtractRequest",
    "ExtractResponse",
    "ModelInfo",
    "ModelList",
    "PageImage",
    "TaskInfo",
]


class ExtractOptions(BaseModel):
    """What to extract and how; the same fields in JSON and as multipart form fields."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(default=None, description="A served model name (default: the first model).")
    task: str | None = Field(default=None, description="A built-in task name (GET /v1/tasks).")
    json_schema: dict[str, Any] | None = Field(default=None, description="Your own JSON Schema (instead of task).")
    instructions: str | None = Field(default=None, description="Instructions for the model (replace the task's).")
    pages: list[int] | None = Field(default=None, description='PDF pages, 1-based: [1, 3] or "1,3-5" (default: all).')
    mode: DocumentMode = Field(
        default=PER_PAGE, description="PDFs: one result per page, or one for the whole document."
    )
    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens per result.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature (default greedy).")
    include_images: bool = Field(
        default=False,
        description="Add `pages`: each page as the model saw it (after EXIF, resize, PDF rendering) as a data: URI.",
    )

    @field_validator("pages", mode="before")
    @classmethod
    def _page_selection(cls, value: Any) -> Any:
        if isinstance(value, str):
            from docextract.preprocess.pages import parse_page_selection

            try:
                return parse_page_selection(value)
            except InputError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("pages")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 1):
            raise ValueError("pages are 1-based and at least one must be given")
        return value

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema_text(cls, value: Any) -> Any:
        # Multipart sends it as text.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
        return value

    def sampling_overrides(self) -> dict[str, Any]:
        values = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        return {k: v for k, v in values.items() if v is not None}


class ExtractRequest(ExtractOptions):
    """``POST /v1/extract`` as JSON."""

    document: str = Field(
        min_length=1, description="The image or PDF: a base64 data: URI, bare base64, or an http(s) URL."
    )
    filename: str | None = Field(default=None, max_length=255, description="A name for the results' ids.")
    media_type: str | None = Field(
        default=None, description="The content's type, used only if its bytes match no known signature."
    )


class PageImage(BaseModel):
    """One page as the model saw it."""

    page: int = Field(description="1-based page number (1 for an image).")
    image: str = Field(description="A data:image/png or data:image/jpeg base64 URI.")


class ExtractResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model: str
    task: str
    task_version: str
    results: list[ExtractionResult]
    pages: list[PageImage] | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The page images, only with `include_images: true`.",
    )


class TaskInfo(BaseModel):
    name: str
    version: str
    description: str
    instructions: str
    json_schema: dict[str, Any]


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "docextract"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


def document_name(filename: str | None, default: str) -> str:
    """A client's file name reduced to a safe label (no directories)."""
    base = os.path.basename((filename or "").replace("\\", "/")).strip()
    return base[:128] or default


def parse_options(fields: dict[str, Any], model_cls: type[ExtractOptions] = ExtractOptions) -> ExtractOptions:
    try:
        return model_cls.model_validate(fields)
    except ValidationError as exc:
        raise invalid_request(exc) from None
