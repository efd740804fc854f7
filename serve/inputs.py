"""Turn what a request names (a data URI, bare base64, an http(s) URL) into bytes.

Shared by every route that accepts an image or a document: ``/v1/extract``,
``image_url`` parts of chat messages and markdown images of TGI's
``/generate``. Nothing here reads a server-side path: a string that is not a
data URI or a URL is base64 or an error, never a file name.
"""

from __future__ import annotations

import base64
import binascii

from docextract.errors import InputError
from docextract.images import decode_data_uri
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
                http_status=400,
            )
        return await fetcher.fetch(ref, max_bytes=max_bytes)
    if not allow_bare_base64:
        raise InputError(
            f"{name}: expected a data URI (data:<type>;base64,...) or an http(s) URL", kind="invalid_data_uri"
        )
    if len(ref) // 4 * 3 > max_bytes:
        raise InputError(
            f"{name}: {len(ref) // 4 * 3 / 1024**2:.1f} MiB, more than the limit of {max_bytes / 1024**2:g} MiB",
            kind="too_large",
        )
    try:
        return base64.b64decode("".join(ref.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            f"{name}: not base64, a data URI or an http(s) URL (server-side paths are never read)",
            kind="invalid_data_uri",
        ) from None
