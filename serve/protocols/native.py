"""``POST /v1/extract``: the native extraction route (models in :mod:`.native_models`).

A document (multipart upload, or JSON with a data URI / URL / bare base64) and a task
(built-in name or inline schema) become a loaded document and an
:class:`~serve.deployment.ExtractCall`; the replica's engine splits it into per-page or
whole-document requests (:func:`docextract.preprocess.pages.group_pages`) and answers
one :class:`~docextract.results.ExtractionResult` per prompt. With ``include_images``, the
ingress encodes the loaded pages (as the model sees them) into the answer itself, in a thread
while the replica works, so the images never travel to the replica and back.
"""

from __future__ import annotations

import asyncio
import base64
import io
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from serve.errors import ApiError
from serve.protocols.common import ingress_of, json_body, media_type, request_deadline, served_for
from serve.protocols.native_models import (
    ExtractOptions,
    ExtractRequest,
    ExtractResponse,
    PageImage,
    document_name,
    parse_options,
)

if TYPE_CHECKING:
    from docextract.preprocess.documents import Document

__all__ = ["page_images", "router"]

router = APIRouter()

# A page goes back as JPEG only when that is under this share of its PNG (scans, photos);
# text and line art stay lossless PNG.
_JPEG_SHARE = 0.5


def page_images(document: Document) -> list[PageImage]:
    """Each page of ``document`` as a ``data:`` URI: PNG, or JPEG when it is much smaller."""
    images = []
    for page in document.pages:
        png = io.BytesIO()
        page.image.save(png, format="PNG", optimize=False, compress_level=6)
        data, kind = png.getvalue(), "png"
        jpeg = io.BytesIO()
        page.image.convert("RGB").save(jpeg, format="JPEG", quality=85)
        if jpeg.tell() < _JPEG_SHARE * len(data):
            data, kind = jpeg.getvalue(), "jpeg"
        images.append(
            PageImage(page=page.page_number, image=f"data:image/{kind};base64," + base64.b64encode(data).decode())
        )
    return images


@router.post("/v1/extract")
async def extract(request: Request) -> ExtractResponse:
    from serve.deployment import ExtractCall

    ingress = ingress_of(request)
    deadline = request_deadline(request)
    kind = media_type(request)
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=16)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(
                400, 'multipart requests need the document as a file part named "file"', kind="invalid_request"
            )
        options = parse_options({k: v for k, v in form.items() if k != "file"})
        served = served_for(request, options.model)
        content = await upload.read()
        name, content_type = document_name(upload.filename, "upload"), upload.content_type
    elif kind in ("application/json", ""):
        body = await json_body(request, ExtractRequest)
        options = body
        served = served_for(request, options.model)
        name, content_type = document_name(body.filename, "document"), body.media_type
        content = await deadline.run(ingress.content(served, body.document, name=name, allow_bare_base64=True))
    else:
        raise ApiError(
            415,
            f"send the document as multipart/form-data or application/json, not {kind!r}",
            kind="unsupported_media_type",
        )
    assert isinstance(options, ExtractOptions)
    task = await deadline.run(
        ingress.extraction_task(
            served, task=options.task, json_schema=options.json_schema, instructions=options.instructions
        )
    )
    document, preprocess_s = await deadline.run(
        ingress.load_document(served, content, name=name, media_type=content_type, pages=options.pages)
    )
    call = ExtractCall(
        document=document,
        task=task,
        mode=options.mode,
        sampling=ingress.sampling(served, options.sampling_overrides()),
        preprocess_s=preprocess_s,
    )
    # The images are encoded in a thread while the replica extracts.
    images = asyncio.create_task(asyncio.to_thread(page_images, document)) if options.include_images else None
    try:
        results = await ingress.call(served, "extract", call, deadline)
    except BaseException:
        if images is not None:
            images.cancel()
        raise
    ingress.metrics.observe_results(served.model_name, results)
    return ExtractResponse(
        model=served.model_name,
        task=task.name,
        task_version=task.version,
        results=results,
        pages=await images if images is not None else None,
    )
