"""The model family registry: each family's smallest input, and how it becomes the default
``min_pixels`` of every :class:`ExtractionConfig` (so the CLI, the service and batch jobs
scale tiny images up alike)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from docextract.config import DEFAULT_MIN_PIXELS, ExtractionConfig, PreprocessOptions
from docextract.models.families import (
    IDEFICS3_MIN_PIXELS,
    PIXTRAL_MIN_PIXELS,
    QWEN_VL_MIN_PIXELS,
    family_for,
    model_family,
    model_input_size,
    model_min_pixels,
)
from docextract.preprocess.documents import load_model_page


def model_dir(tmp_path, architecture: str, preprocessor: dict | None = None):
    path = tmp_path / f"{architecture}-{len(list(tmp_path.iterdir()))}"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    if preprocessor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return str(path)


def png(size: tuple[int, int]) -> bytes:
    img = Image.new("RGB", size, "white")
    img.paste((0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("architecture", "minimum"),
    [
        ("Qwen2VLForConditionalGeneration", 56 * 56),
        ("Qwen2_5_VLForConditionalGeneration", 56 * 56),
        ("Idefics3ForConditionalGeneration", 364 * 364),
        ("SmolVLMForConditionalGeneration", 364 * 364),
        ("PixtralForConditionalGeneration", 16 * 16),
        ("Mistral3ForConditionalGeneration", 16 * 16),
        ("SomethingElseForCausalLM", DEFAULT_MIN_PIXELS),
    ],
)
def test_each_family_has_its_processors_minimum(architecture, minimum, tmp_path):
    assert family_for([architecture]).minimum() == minimum
    assert model_min_pixels(model_dir(tmp_path, architecture)) == minimum


def test_a_checkpoints_own_preprocessor_config_wins(tmp_path):
    # SmolVLM checkpoints tile at 384 or 512, not the processor's default 364.
    smol = model_dir(tmp_path, "SmolVLMForConditionalGeneration", {"max_image_size": {"longest_edge": 512}})
    assert model_min_pixels(smol) == 512 * 512
    qwen = model_dir(tmp_path, "Qwen2VLForConditionalGeneration", {"min_pixels": 28 * 28 * 8})
    assert model_min_pixels(qwen) == 28 * 28 * 8
    pixtral = model_dir(tmp_path, "PixtralForConditionalGeneration", {"patch_size": {"height": 14, "width": 14}})
    assert model_min_pixels(pixtral) == 14 * 14
    # transformers 5 saves the image processor's settings in processor_config.json.
    saved_by_5 = model_dir(tmp_path, "Idefics3ForConditionalGeneration")
    (tmp_path / saved_by_5 / "processor_config.json").write_text(
        json.dumps({"image_processor": {"max_image_size": {"longest_edge": 64}}})
    )
    assert model_min_pixels(saved_by_5) == 64 * 64
    broken = model_dir(tmp_path, "SmolVLMForConditionalGeneration", {"max_image_size": "big"})
    assert model_min_pixels(broken) == IDEFICS3_MIN_PIXELS


def test_a_model_not_on_this_machine_gets_the_generic_minimum(tmp_path):
    assert model_min_pixels("nobody/not-a-cached-model") == DEFAULT_MIN_PIXELS == QWEN_VL_MIN_PIXELS
    assert model_min_pixels(str(tmp_path / "missing")) == DEFAULT_MIN_PIXELS


def test_config_takes_the_loaded_models_minimum_unless_the_user_set_one(tmp_path):
    idefics3 = model_dir(tmp_path, "Idefics3ForConditionalGeneration")
    assert ExtractionConfig(model=idefics3).preprocess.min_pixels == IDEFICS3_MIN_PIXELS
    pixtral = model_dir(tmp_path, "PixtralForConditionalGeneration")
    assert ExtractionConfig(model=pixtral).preprocess.min_pixels == PIXTRAL_MIN_PIXELS
    # The user's value wins, None included; a budget below the minimum caps it.
    assert ExtractionConfig(model=idefics3, preprocess={"min_pixels": 1000}).preprocess.min_pixels == 1000
    assert ExtractionConfig(model=idefics3, preprocess={"min_pixels": None}).preprocess.min_pixels is None
    assert ExtractionConfig(model=idefics3, preprocess={"max_pixels": 128 * 128}).preprocess.min_pixels == 128 * 128
    # Resolved once: a config sent to another process (dumped and loaded) keeps the value.
    config = ExtractionConfig(model=idefics3)
    assert ExtractionConfig.model_validate(config.model_dump()).preprocess.min_pixels == IDEFICS3_MIN_PIXELS


def test_preprocessing_scales_a_tiny_image_to_the_family_minimum(tmp_path):
    options = ExtractionConfig(model=model_dir(tmp_path, "Idefics3ForConditionalGeneration")).preprocess
    page = load_model_page(png((40, 40)), name="stamp.png", options=options)
    assert page.image.size == (364, 364)
    assert [w.kind for w in page.warnings] == ["upscaled"]
    assert "40x40 pixels, scaled up to 364x364 (min_pixels 132496)" in page.warnings[0].message
    # Pixtral reads a 40 x 40 image as it is (one patch is 16 x 16); the generic default would not.
    pixtral = ExtractionConfig(model=model_dir(tmp_path, "PixtralForConditionalGeneration")).preprocess
    assert load_model_page(png((40, 40)), name="stamp.png", options=pixtral).warnings == ()
    assert load_model_page(png((40, 40)), name="stamp.png", options=PreprocessOptions()).image.size == (56, 56)


def test_auto_dtype_is_float32_only_on_an_x86_cpu_without_native_bfloat16(monkeypatch):
    import torch

    from docextract.models import dtype

    monkeypatch.setattr(dtype.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert dtype.engine_dtype("auto", cpu=True) == "float32"
    assert dtype.engine_dtype("bfloat16", cpu=True) == "bfloat16"  # what the user names is kept
    assert dtype.engine_dtype("auto", cpu=False) == "auto"  # a GPU engine
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert dtype.engine_dtype("auto", cpu=True) == "auto"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert dtype.engine_dtype("auto", cpu=True) == "auto"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(dtype.platform, "machine", lambda: "aarch64")
    assert dtype.engine_dtype("auto", cpu=True) == "auto"


@pytest.mark.parametrize("size", [(1024, 1024), (1000, 700), (3000, 40), (57, 57), (20, 30), (448, 448), (2481, 3508)])
@pytest.mark.parametrize("budget", [(None, 1024 * 1024), (28 * 28 * 8, 448 * 448), (None, 112 * 112)])
def test_qwen_input_size_is_transformers_smart_resize_and_a_fixed_point(size, budget):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    min_pixels, max_pixels = budget
    family = family_for(["Qwen2_5_VLForConditionalGeneration"])
    width, height = size
    got = model_input_size(family, size, min_pixels, max_pixels)
    bounds = {"factor": 28, "min_pixels": min_pixels or QWEN_VL_MIN_PIXELS, "max_pixels": max_pixels}
    height_t, width_t = smart_resize(height, width, **bounds)
    fixed = smart_resize(height_t, width_t, **bounds) == (height_t, width_t)
    if not fixed:
        # transformers would resize its own result again (a side held at 28 px at an extreme aspect
        # ratio): the page is left to the processor, which then does what it does to the original.
        assert got is None
        return
    assert got == (width_t, height_t)
    # An image already at that size is left there (what lets the processor skip its resize).
    assert model_input_size(family, got, min_pixels, max_pixels) == got


def test_input_size_unknown_without_a_budget_or_a_known_family(tmp_path):
    qwen = family_for(["Qwen2VLForConditionalGeneration"])
    assert model_input_size(qwen, (640, 480), None, None) is None  # the checkpoint's own bounds apply
    assert model_input_size(qwen, (4000, 10), None, 1024 * 1024) is None  # the processor refuses it
    assert model_input_size(family_for(["SomethingElse"]), (640, 480), None, 1024 * 1024) is None
    assert model_family(model_dir(tmp_path, "Qwen2VLForConditionalGeneration")) is qwen
    assert model_family(str(tmp_path / "missing")).name == "generic"
