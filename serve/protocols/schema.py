"""``POST /v1/schema/check``: the schema compiler's coverage report as JSON, before any run.

The same report ``docextract schema check`` prints as a table
(:func:`docextract.schema.compiler.check_coverage`): for each keyword at each JSON path,
``enforced`` by the grammar, ``validated`` after generation, an ``annotation``, or
``refused`` with the reason. A refused schema is a 200 with ``accepted: false``: the
check itself succeeded.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from serve.protocols.common import json_body, request_deadline, served_for
from serve.protocols.schema_models import SchemaCheckRequest, SchemaCheckResponse

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/schema/check")
async def check(request: Request) -> SchemaCheckResponse:
    from docextract.schema.compiler import check_coverage
    from docextract.tasks import get_builtin_task

    body = await json_body(request, SchemaCheckRequest)
    deadline = request_deadline(request)
    served = served_for(request, body.model)
    backend = body.structured_output_backend or served.structured_output_backend
    schema = get_builtin_task(body.task).json_schema if body.task is not None else body.json_schema
    # Compiling a large schema takes a while: off the event loop.
    report = await deadline.run(asyncio.to_thread(check_coverage, schema, backend, served.schema_store))
    return SchemaCheckResponse.from_report(report)
