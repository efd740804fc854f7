"""docextract.preprocess.images: loading, orientation, RGB conversion, pixel budget, limits."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from docfactory import forged_png, image_bytes, jpeg_with_orientation
from PIL import Image

from docextract.errors import InputError
from docextract.preprocess import images
from docextract.preprocess.images import load_image, resize_to_pixel_budget, to_rgb
from docextract.preprocess.sources import decode_data_uri, read_source_bytes


def _load(source, **kwargs):
    kwargs.setdefault("max_pixels", None)
    return load_image(source, **kwargs)


def test_exif_rotated_jpeg_comes_out_upright():
    # Stored 80x40, left half black; orientation 6 means "rotate 90 degrees clockwise to view".
    img = _load(jpeg_with_orientation((80, 40), orientation=6))
    assert img.size == (40, 80)
    assert img.mode == "RGB"
    # After a clockwise turn the stored left half is on top.
    assert img.getpixel((20, 10))[0] < 60
    assert img.getpixel((20, 70))[0] > 200


def test_jpeg_without_orientation_is_unchanged():
    img = _load(image_bytes((80, 40), fmt="JPEG"))
    assert img.size == (80, 40)


def test_rgba_is_flattened_on_white():
    data = image_bytes((10, 10), mode="RGBA", color=(255, 0, 0, 0))
    img = _load(data)
    assert img.mode == "RGB"
    assert img.getpixel((5, 5)) == (255, 255, 255)
    half = _load(image_bytes((10, 10), mode="RGBA", color=(0, 0, 0, 128)))
    assert 120 <= half.getpixel((5, 5))[0] <= 135


@pytest.mark.parametrize("mode,color", [("L", 90), ("P", 3), ("CMYK", (0, 0, 0, 0)), ("1", 1), ("LA", (0, 255))])
def test_other_modes_become_rgb(mode, color):
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "LA" else "PNG")
    assert _load(image_bytes((12, 8), mode=mode, color=color, fmt=fmt)).mode == "RGB"


def test_16_bit_grayscale_is_scaled_not_clipped():
    arr = np.full((4, 4), 32768, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    img = _load(buf.getvalue())
    assert img.mode == "RGB"
    assert 126 <= img.getpixel((0, 0))[0] <= 129


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (10000, 500), (1001, 999)])
def test_resize_keeps_aspect_ratio_within_budget(size):
    budget = 1280 * 28 * 28
    out = resize_to_pixel_budget(Image.new("RGB", size), budget)
    w, h = out.size
    assert w * h <= budget
    assert w * h > budget * 0.98  # uses the budget, not far below it
    assert abs(w / h - size[0] / size[1]) < 0.02 * size[0] / size[1]


def test_resize_leaves_small_images_and_upscales_to_floor():
    img = Image.new("RGB", (100, 50))
    assert resize_to_pixel_budget(img, 1_000_000) is img
    up = resize_to_pixel_budget(img, 1_000_000, min_pixels=20_000)
    assert up.size[0] * up.size[1] >= 20_000
    assert up.size == (200, 100)
    with pytest.raises(ValueError):
        resize_to_pixel_budget(img, 100, min_pixels=200)


def test_load_image_applies_budget():
    img = _load(image_bytes((2000, 1000)), max_pixels=50_000)
    assert img.size[0] * img.size[1] <= 50_000
    assert img.size == (316, 158)


def test_large_jpeg_is_decoded_at_reduced_scale():
    data = image_bytes((4000, 3000), fmt="JPEG")
    # libjpeg decodes at 1/8 scale (500x375), not 12 MP, when 100,000 px are wanted.
    assert images._decode(data, "photo.jpg", 50_000_000, 100_000).size == (500, 375)
    img = _load(data, max_pixels=100_000)
    assert img.size[0] * img.size[1] <= 100_000
    assert abs(img.size[0] / img.size[1] - 4 / 3) < 0.02


def test_decompression_bomb_is_refused_before_decoding():
    # The header claims 10 gigapixels; the pixel data is a few junk bytes, so
    # an attempt to decode would fail as corrupt, not as too large.
    with pytest.raises(InputError) as err:
        _load(forged_png(100_000, 100_000), name="bomb.png")
    assert err.value.kind == "too_large"
    assert "bomb.png" in str(err.value)


def test_own_pixel_limit_is_checked_before_decoding():
    with pytest.raises(InputError) as err:
        _load(forged_png(4000, 3000), max_image_pixels=10_000_000)
    assert err.value.kind == "too_large"
    assert "4000x3000" in str(err.value)
    # Within the limit the same file is decoded, and found corrupt.
    with pytest.raises(InputError) as err:
        _load(forged_png(400, 300))
    assert err.value.kind == "corrupt_image"


def test_pil_image_source_is_checked_and_not_modified():
    src = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    out = _load(src, max_pixels=6_000)
    assert src.mode == "RGBA" and src.size == (300, 200)
    assert out.mode == "RGB" and out.size[0] * out.size[1] <= 6_000
    with pytest.raises(InputError) as err:
        _load(src, max_image_pixels=1000)
    assert err.value.kind == "too_large"


@pytest.mark.parametrize(
    "data,kind,text",
    [
        (b"this is not an image at all", "corrupt_image", "cannot identify image file"),
        (b"", "empty_file", "empty file"),
        (image_bytes((200, 200), color=(1, 2, 3))[:60], "corrupt_image", "sample.png"),
    ],
    ids=["garbage", "empty", "truncated-png"],
)
def test_bad_bytes_name_the_source(data, kind, text):
    with pytest.raises(InputError) as err:
        _load(data, name="sample.png")
    assert err.value.kind == kind
    assert str(err.value).startswith("sample.png: ")
    assert text in str(err.value)


def test_truncated_png_body():
    # Header and size intact, pixel data cut: fails on decode, not on open.
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, format="PNG")
    data = buf.getvalue()
    with pytest.raises(InputError) as err:
        _load(data[: len(data) // 2], name="cut.png")
    assert err.value.kind == "corrupt_image"
    assert "truncated" in str(err.value)


def test_unsupported_pillow_format_is_not_opened():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PCX")
    with pytest.raises(InputError) as err:
        _load(buf.getvalue())
    assert err.value.kind == "corrupt_image"


def test_path_source(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes((30, 20)))
    assert _load(path).size == (30, 20)
    assert _load(str(path)).size == (30, 20)
    with pytest.raises(InputError) as err:
        _load(tmp_path / "missing.png")
    assert err.value.kind == "not_found"
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError) as err:
        _load(tmp_path / "empty.png")
    assert err.value.kind == "empty_file"


def test_max_bytes(tmp_path):
    data = image_bytes((30, 20))
    with pytest.raises(InputError) as err:
        _load(data, max_bytes=10)
    assert err.value.kind == "too_large"
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        _load(path, max_bytes=10)
    assert err.value.kind == "too_large"


def test_data_uri():
    data = image_bytes((30, 20))
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    assert decode_data_uri(uri) == data
    assert _load(uri).size == (30, 20)
    # Line-wrapped base64 (as some clients send) is accepted.
    wrapped = "data:image/png;base64," + base64.encodebytes(data).decode()
    assert decode_data_uri(wrapped) == data


@pytest.mark.parametrize(
    "uri",
    ["data:image/png,rawtext", "data:image/png;base64,@@@not-base64@@@", "data:image/png;base64"],
)
def test_bad_data_uri(uri):
    with pytest.raises(InputError) as err:
        _load(uri)
    assert err.value.kind == "invalid_data_uri"


def test_data_uri_size_checked_before_decoding():
    uri = "data:image/png;base64," + "A" * 4000
    with pytest.raises(InputError) as err:
        decode_data_uri(uri, max_bytes=1000)
    assert err.value.kind == "too_large"


def test_bare_base64_string_is_a_path():
    with pytest.raises(InputError) as err:
        read_source_bytes(base64.b64encode(image_bytes()).decode())
    assert err.value.kind == "not_found"


@pytest.mark.parametrize("mode", ["LAB", "HSV", "YCbCr", "I", "F", "I;16", "RGBX", "PA"])
def test_to_rgb_converts_every_mode_a_file_can_have(mode):
    assert to_rgb(Image.new(mode, (2, 2))).mode == "RGB"


def test_to_rgb_unconvertible_mode_is_input_error():
    # Premultiplied alpha only exists in memory; Pillow cannot convert it.
    with pytest.raises(InputError) as err:
        to_rgb(Image.new("La", (2, 2)), name="odd.png")
    assert err.value.kind == "unsupported_type"
    assert "odd.png" in str(err.value)
