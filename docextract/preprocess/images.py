"""Load one image, ready for the model: upright, RGB, within a pixel budget.

Input is untrusted, so the limits come before the work: the file size is
checked before reading it (:mod:`docextract.preprocess.sources` reads every
reference), and the pixel count its header claims is checked before decoding
it (a 100-byte PNG can claim 10 gigapixels). Only common raster formats are
opened; Pillow's other plugins (EPS runs Ghostscript) stay off.
"""

from __future__ import annotations

import io
import logging
import math
import os

import numpy as np
from PIL import Image, ImageOps

from docextract.config import DEFAULT_MAX_BYTES, DEFAULT_MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from docextract.errors import InputError
from docextract.preprocess.sources import read_source_bytes

__all__ = [
    "ImageSource",
    "SUPPORTED_IMAGE_FORMATS",
    "check_min_side",
    "count_frames",
    "is_uniform",
    "load_image",
    "resize_to_pixel_budget",
    "to_rgb",
]

logger = logging.getLogger(__name__)

#: A path, the file's bytes, a ``data:`` URI, or an image already open.
ImageSource = str | os.PathLike | bytes | Image.Image

#: Pillow format names accepted (phones' multi-picture JPEGs open through JPEG, as MPO).
SUPPORTED_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
_ORIENTATION_TAG = 0x0112
_WHITE = (255, 255, 255)


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None,
    min_pixels: int | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    name: str | None = None,
    frame: int = 0,
) -> Image.Image:
    """Load an image, turn it upright (EXIF), make it RGB and fit it to a pixel budget.

    Args:
        source: A path, bytes, a base64 ``data:`` URI, or a PIL image (not
            modified; the result may be the same object when nothing changes).
        max_pixels: Scale down to at most this many pixels, keeping the aspect
            ratio; None keeps the full size.
        min_pixels: Scale up to at least this many pixels; None never upscales.
        max_image_pixels: Refuse images whose header claims more pixels,
            before decoding them.
        max_bytes: Refuse files larger than this.
        name: How the image is named in error messages.
        frame: 0-based frame of a multi-frame file (a TIFF's page); a PIL image is used as is.

    Returns:
        An RGB image (transparency flattened on white).

    Raises:
        InputError: ``corrupt_image``, ``too_large``, ``empty_file``,
            ``not_found``, ``invalid_data_uri`` or ``unsupported_type``.
    """
    if isinstance(source, Image.Image):
        name = name or "image"
        img = source
        _check_pixels(img.size, max_image_pixels, name)
        try:
            img.load()
        except Exception as exc:  # noqa: BLE001 - a lazily opened image may fail now
            raise InputError(f"{name}: corrupt or truncated image ({exc})", kind="corrupt_image") from None
    else:
        name, data = read_source_bytes(source, max_bytes=max_bytes, name=name)
        img = _decode(data, name, max_image_pixels, max_pixels, frame)
    img = _upright(img, name)
    img = to_rgb(img, name=name)
    return resize_to_pixel_budget(img, max_pixels, min_pixels)


def resize_to_pixel_budget(img: Image.Image, max_pixels: int | None, min_pixels: int | None = None) -> Image.Image:
    """Scale ``img`` so that width x height lies in ``[min_pixels, max_pixels]``,
    keeping its aspect ratio; an image already within the budget is returned as is.

    Args:
        img: The image.
        max_pixels: Upper bound (None: none).
        min_pixels: Lower bound (None: never upscale); the upper bound wins
            where rounding makes both impossible.

    Returns:
        The image, resized with bicubic filtering if needed.
    """
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels})")
    width, height = img.size
    area = width * height
    if max_pixels is not None and area > max_pixels:
        scale = math.sqrt(max_pixels / area)
        size = _fit_below(width * scale, height * scale, max_pixels)
    elif min_pixels is not None and area < min_pixels:
        scale = math.sqrt(min_pixels / area)
        size = (math.ceil(width * scale), math.ceil(height * scale))
        if max_pixels is not None and size[0] * size[1] > max_pixels:
            size = _fit_below(width * scale, height * scale, max_pixels)
    else:
        return img
    # reducing_gap: a box-filter pass first makes large reductions several times faster.
    return img.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def is_uniform(img: Image.Image) -> bool:
    """Whether every pixel has the same colour (a blank page): each band's min equals its max."""
    extrema = img.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(low == high for low, high in bands)  # type: ignore[misc]


def check_min_side(size: tuple[int, int], name: str) -> None:
    """Refuse an image whose shorter side is under :data:`~docextract.config.MIN_IMAGE_SIDE` pixels.

    Raises:
        InputError: ``too_small``.
    """
    if min(size) < MIN_IMAGE_SIDE:
        raise InputError(
            f"{name}: {size[0]}x{size[1]} pixels is too small to read; "
            f"images and pages need at least {MIN_IMAGE_SIDE} pixels a side",
            kind="too_small",
        )


def count_frames(data: bytes) -> int:
    """Frames in a TIFF (its pages); 1 for any other file, or one Pillow cannot read
    (the loader then reports why)."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as img:
            return max(1, int(getattr(img, "n_frames", 1)))
    except Exception:  # noqa: BLE001 - decoders raise anything on hostile input
        return 1


def to_rgb(img: Image.Image, *, name: str = "image") -> Image.Image:
    """Convert to RGB: transparency is flattened on white, 16-bit and float
    grayscale are scaled to 8 bits rather than clipped.

    Raises:
        InputError: ``unsupported_type`` for a mode Pillow cannot convert.
    """
    if img.mode == "RGB":
        return img
    try:
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", img.size, _WHITE)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        if img.mode.startswith(("I", "F")):
            return Image.fromarray(_to_uint8(np.asarray(img), img.mode), "L").convert("RGB")
        return img.convert("RGB")
    except ValueError as exc:
        raise InputError(f"{name}: cannot convert a {img.mode} image to RGB ({exc})", kind="unsupported_type") from None


# --- helpers ----------------------------------------------------------------


def _check_pixels(size: tuple[int, int], max_image_pixels: int, name: str) -> None:
    width, height = size
    if width * height > max_image_pixels:
        raise InputError(
            f"{name}: image is {width}x{height} ({width * height / 1e6:.1f} MP), "
            f"more than the limit of {max_image_pixels / 1e6:g} MP",
            kind="too_large",
        )
    if width < 1 or height < 1:
        raise InputError(f"{name}: image has no pixels ({width}x{height})", kind="corrupt_image")


def _decode(data: bytes, name: str, max_image_pixels: int, max_pixels: int | None, frame: int = 0) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data), formats=SUPPORTED_IMAGE_FORMATS)
        if frame:
            img.seek(frame)
    except Image.UnidentifiedImageError:
        raise InputError(f"{name}: not a valid image (cannot identify image file)", kind="corrupt_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (module-wide) can fire before ours does.
        raise InputError(f"{name}: image too large ({exc})", kind="too_large") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on hostile input
        raise InputError(f"{name}: not a valid image ({exc})", kind="corrupt_image") from None
    # Opening read only the header: the size is known, nothing is decoded yet.
    _check_pixels(img.size, max_image_pixels, name)
    if img.format in ("JPEG", "MPO") and max_pixels is not None and img.width * img.height > 4 * max_pixels:
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale: much less time and memory
        # for a photo that is scaled down anyway. draft() never goes below `target`.
        scale = math.sqrt(max_pixels / (img.width * img.height))
        img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{name}: image too large ({exc})", kind="too_large") from None
    except Exception as exc:  # noqa: BLE001 - truncated data, bad checksums, decoder errors
        raise InputError(f"{name}: corrupt or truncated image ({exc})", kind="corrupt_image") from None
    return img


def _upright(img: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation, leaving the image as stored when EXIF is broken:
    a sideways page reads better than a refused one."""
    try:
        if img.getexif().get(_ORIENTATION_TAG, 1) == 1:
            return img
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # noqa: BLE001 - EXIF blocks are often malformed
        logger.warning("%s: ignoring unreadable EXIF orientation (%s)", name, exc)
        return img


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64))
    if mode.startswith("I;16"):
        arr = arr / 257.0
    else:
        # 32-bit int or float samples have no fixed range: stretch what is there.
        peak = float(arr.max()) if arr.size else 0.0
        if mode == "F" and 0.0 < peak <= 1.0:
            arr = arr * 255.0
        elif peak > 255.0:
            arr = arr * (255.0 / peak)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _fit_below(width: float, height: float, max_pixels: int) -> tuple[int, int]:
    """Integer size near ``width`` x ``height`` with at most ``max_pixels`` pixels."""
    w, h = max(1, int(width)), max(1, int(height))
    while w * h > max_pixels and (w > 1 or h > 1):
        if w >= h:
            w -= 1
        else:
            h -= 1
    return w, h
