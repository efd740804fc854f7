"""Unit tests for docextract.testing (tiny_model and its parts): the random Qwen2-VL and Idefics3 load and run in transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from docextract.testing.tiny_model import BENCH, TINY, TINY_IDEFICS3, TinyModelSpec, build_tiny_model  # noqa: E402

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-qwen2vl")


def test_import_is_lazy():
    code = (
        "import sys, docextract.testing.tiny_model, docextract.testing.families, docextract.testing.tokenizer, "
        "docextract.testing.weights; print(sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_specs():
    assert TINY.max_image_tokens == 64 and BENCH.max_image_tokens == 256
    assert TINY.hidden_size == 128 and BENCH.hidden_size == 1024
    with pytest.raises(ValueError):
        TinyModelSpec(hidden_size=128, num_attention_heads=2, mrope_section=(16, 24, 24))
    # Idefics3: 64x64 tiles of 8x8 patches, pixel-shuffled 2x2 -> 16 tokens a tile; 2x2 tiles + global image.
    assert TINY_IDEFICS3.family == "idefics3" and TINY_IDEFICS3.max_image_tokens == 5 * 16
    assert TinyModelSpec(family="idefics3", patch_size=8, max_pixels=64 * 64).max_image_tokens == 16
    with pytest.raises(ValueError):
        TinyModelSpec(family="llava")
    with pytest.raises(ValueError):
        TinyModelSpec(family="idefics3", patch_size=8, max_pixels=448 * 448)  # 7x7 tiles: no <row_7_col_1>


def test_files_and_config(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "docextract_tiny_model.json",
    } <= names
    assert "chat_template.jinja" in names or "chat_template.json" in names

    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    cfg = AutoConfig.from_pretrained(model_dir)
    ids = dict(zip(SPECIAL, tok.convert_tokens_to_ids(SPECIAL), strict=True))
    assert cfg.image_token_id == ids["<|image_pad|>"]
    assert cfg.video_token_id == ids["<|video_pad|>"]
    assert cfg.vision_start_token_id == ids["<|vision_start|>"]
    assert cfg.vision_end_token_id == ids["<|vision_end|>"]
    assert cfg.text_config.eos_token_id == ids["<|im_end|>"] == tok.eos_token_id
    assert len(tok) <= cfg.text_config.vocab_size == TINY.vocab_size
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [ids["<|im_end|>"], ids["<|endoftext|>"]]
    assert tok.chat_template  # vLLM falls back to the tokenizer's template

    # Byte-level BPE: any text round-trips, special tokens are single tokens.
    text = 'Total: 1,234.50 € — 中文 🙂 {"a": [1, null]}\t\x00'
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok("<|im_start|>user")["input_ids"][0] == ids["<|im_start|>"]


def test_reuse_and_refuse_foreign_dir(model_dir, tmp_path):
    weights = model_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert build_tiny_model(model_dir) == model_dir
    assert weights.stat().st_mtime_ns == mtime  # reused, not rebuilt
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        build_tiny_model(tmp_path)  # never deletes a directory it did not build


def test_transformers_forward_and_generate(model_dir):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    assert sum(p.numel() for p in model.parameters()) < 2_000_000

    image = Image.new("RGB", (300, 200), (200, 30, 30))
    messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": "Describe the image."}]}]  # fmt: skip
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|vision_start|><|image_pad|><|vision_end|>Describe the image.<|im_end|>" in prompt
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")

    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    t, h, w = inputs["image_grid_thw"][0].tolist()
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == t * h * w // 4
    assert 0 < n_image_tokens <= TINY.max_image_tokens
    assert inputs["pixel_values"].shape == (t * h * w, 3 * 2 * 14 * 14)

    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], TINY.vocab_size)
    assert torch.isfinite(logits.float()).all()

    out = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)
    assert isinstance(processor.batch_decode(out[:, inputs["input_ids"].shape[1] :])[0], str)


@pytest.fixture(scope="module")
def idefics3_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-idefics3", TINY_IDEFICS3)


def test_idefics3_transformers_forward_and_generate(idefics3_dir):
    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    names = {p.name for p in idefics3_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    processor = AutoProcessor.from_pretrained(idefics3_dir)
    tok = processor.tokenizer
    cfg = AutoConfig.from_pretrained(idefics3_dir)
    assert type(processor).__name__ == "Idefics3Processor"
    assert type(processor.image_processor).__name__ == "Idefics3ImageProcessor"
    assert cfg.architectures == ["Idefics3ForConditionalGeneration"] and not cfg.tie_word_embeddings
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<image>") == processor.image_token_id
    assert cfg.text_config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<end_of_utterance>")
    for special in ("<fake_token_around_image>", "<global-img>", "<row_1_col_1>", "<row_6_col_6>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    text = 'Total: 1,234.50 € — 中文 🙂 {"a": [1, null]}\t\x00'
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text

    model = AutoModelForImageTextToText.from_pretrained(idefics3_dir).eval()
    assert sum(p.numel() for p in model.parameters()) < 1_500_000

    image = Image.new("RGB", (300, 200), (200, 30, 30))
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]},
    ]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == ("<|im_start|>System: Be brief.<end_of_utterance>\n"
                      "User:<image>Describe the image.<end_of_utterance>\nAssistant:")  # fmt: skip

    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    # Longest edge 128, cut into 64x64 tiles: 2x2 tiles plus the global image, 16 tokens each.
    assert inputs["pixel_values"].shape == (1, 5, 3, 64, 64)
    assert int((inputs["input_ids"] == cfg.image_token_id).sum()) == TINY_IDEFICS3.max_image_tokens == 80
    expanded = tok.decode(inputs["input_ids"][0])
    assert "<fake_token_around_image><row_2_col_2>" in expanded and "<global-img>" in expanded

    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], TINY_IDEFICS3.vocab_size)
    assert torch.isfinite(logits.float()).all()

    out = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)
