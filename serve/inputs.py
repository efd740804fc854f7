"""Turn what a request names (a data URI, bare base64, an http(s) URL) into bytes.

Shared by every route that accepts an image or a document: ``/v1/extract``,
``image_url`` parts of chat messages and markdown images of TGI's
``/generate``. Nothing here reads a server-side path: a string that is not a
data URI or a URL is base64 or an error, never a file name. Data URIs and
base64 are decoded by :mod:`docextract.preprocess.sources`, as at every other
door; only fetching URLs is the service's own.
"""

from __future__ import annotations

from docextract.errors import InputError
from docextract.preprocess.sources import decode_base64, decode_data_uri
from serve.url_fetch import UrlFetcher

__all__ = ["reference_bytes"]


async def reference_bytes(
    ref: str,
    *,
    fetcher: UrlFetcher | None,
    max_bytes: int,
    name: str,
    allow_bare_base64: bool = False,
) -> bytes:
    """The bytes ``ref`` stands for.

    Args:
        ref: ``data:<type>;base64,...``, ``http(s)://...`` or, with
            ``allow_bare_base64``, plain base64.
        fetcher: Fetches URLs; None when URL fetching is off.
        max_bytes: Refuse larger content (before decoding base64, while fetching).
        name: How the input is named in error messages.

    Raises:
        InputError: ``invalid_data_uri``, ``url_fetch_disabled``, the kinds of
            :meth:`UrlFetcher.fetch`, or ``too_large``.
    """
    if ref.startswith("data:"):
        return decode_data_uri(ref, max_bytes=max_bytes, name=name)
    if ref.startswith(("http://", "https://")):
        if fetcher is None:
            raise InputError(
                f"{name}: URL fetching is disabled on this service; send the content as a base64 data URI",
                kind="url_fetch_disabled",
            )
        return await fetcher.fetch(ref, max_bytes=max_bytes)
    if not allow_bare_base64:
        raise InputError(
            f"{name}: expected a data URI (data:<type>;base64,...) or an http(s) URL", kind="invalid_data_uri"
        )
    return decode_base64(
        ref,
        max_bytes=max_bytes,
        name=name,
        invalid="not base64, a data URI or an http(s) URL (server-side paths are never read)",
    )
