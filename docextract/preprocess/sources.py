"""A reference to an input (a path, bytes, a ``data:`` URI, bare base64) made into bytes.

Input is untrusted, so sizes are checked before the work: a file's size before
it is read, base64's decoded size before it is decoded. Every door reads its
inputs here: the CLI and the batch job through :func:`read_source_bytes`, the
service through :func:`decode_data_uri` and :func:`decode_base64` (it fetches
URLs itself, and never reads a server-side path).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import BinaryIO

from docextract.config import DEFAULT_MAX_BYTES
from docextract.errors import InputError

__all__ = ["check_size", "decode_base64", "decode_data_uri", "open_input", "read_source_bytes"]


def read_source_bytes(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    name: str | None = None,
) -> tuple[str, bytes]:
    """Read a path, bytes or a ``data:`` URI, refusing empty and oversized input.

    Args:
        source: A path (``str`` or path-like), bytes, or a ``data:...;base64,`` URI.
            Any other ``str`` is a path: bare base64 is not accepted.
        max_bytes: Largest accepted size; a file's size is checked before it is read.
        name: How the input is named in error messages (default: the path,
            ``"data URI"`` or ``"input"``).

    Returns:
        ``(name, data)``.

    Raises:
        InputError: ``not_found``, ``empty_file``, ``too_large`` or ``invalid_data_uri``.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "input"
        data = bytes(source)
    elif isinstance(source, str) and source.startswith("data:"):
        name = name or "data URI"
        data = decode_data_uri(source, max_bytes=max_bytes, name=name)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = name or path
        data = _read_file(path, max_bytes, name)
    else:
        raise TypeError(f"expected a path, bytes or a data URI, got {type(source).__name__}")
    if not data:
        raise InputError(f"{name}: empty file", kind="empty_file")
    check_size(len(data), max_bytes, name)
    return name, data


def decode_data_uri(uri: str, *, max_bytes: int | None = None, name: str = "data URI") -> bytes:
    """Decode a base64 ``data:`` URI such as ``data:image/png;base64,iVBOR...``.

    Args:
        uri: The URI; its media type is ignored (the content is sniffed instead).
        max_bytes: Refuse URIs whose decoded size would be larger, before decoding.
        name: How the input is named in error messages.

    Returns:
        The decoded bytes.

    Raises:
        InputError: ``invalid_data_uri`` or ``too_large``.
    """
    if not uri.startswith("data:"):
        raise InputError(f"{name}: not a data URI (expected 'data:<type>;base64,...')", kind="invalid_data_uri")
    header, sep, payload = uri[5:].partition(",")
    if not sep or not header.lower().endswith(";base64"):
        raise InputError(
            f"{name}: only base64 data URIs are supported ('data:<type>;base64,...')", kind="invalid_data_uri"
        )
    return decode_base64(payload, max_bytes=max_bytes, name=name, invalid="invalid base64 in data URI")


def decode_base64(
    text: str, *, max_bytes: int | None = None, name: str = "input", invalid: str = "invalid base64"
) -> bytes:
    """Decode base64 (line breaks allowed), refusing a decoded size over ``max_bytes`` before decoding.

    Args:
        text: The base64 text.
        max_bytes: Largest decoded size accepted (None: any).
        name: How the input is named in error messages.
        invalid: What the error says when ``text`` is not base64 (after ``"{name}: "``).

    Raises:
        InputError: ``too_large``, or ``invalid_data_uri`` for text that is not base64.
    """
    check_size(len(text) // 4 * 3, max_bytes, name)
    try:
        # Line breaks appear in base64 written by some clients; nothing else may.
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{name}: {invalid}", kind="invalid_data_uri") from None


def check_size(size: int, max_bytes: int | None, name: str) -> None:
    """Refuse ``size`` bytes when that is over ``max_bytes`` (None: no limit).

    Raises:
        InputError: ``too_large``, with both sizes in MiB.
    """
    if max_bytes is not None and size > max_bytes:
        raise InputError(
            f"{name}: {size / 1024**2:.1f} MiB, more than the limit of {max_bytes / 1024**2:g} MiB",
            kind="too_large",
        )


def open_input(path: str, name: str) -> BinaryIO:
    """``path`` opened for reading, or ``not_found`` naming why (missing, a directory, denied).

    Raises:
        InputError: ``not_found``.
    """
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", kind="not_found") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a file", kind="not_found") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied", kind="not_found") from None


def _read_file(path: str, max_bytes: int | None, name: str) -> bytes:
    with open_input(path, name) as f:
        check_size(os.fstat(f.fileno()).st_size, max_bytes, name)
        # Read one byte past the limit: the file may grow after the check.
        return f.read(-1 if max_bytes is None else max_bytes + 1)
