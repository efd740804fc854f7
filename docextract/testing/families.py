"""The model families the tiny-model builder knows: per family, its tokens, chat template, processor and model.

Each family copies what a released checkpoint ships (special tokens in the
tokenizer's order, the chat template, the image processor's settings, the
config's token ids) and scales only the widths and depths down, so transformers
and vLLM load the result as they load the real model. ``FAMILIES`` is the
registry :class:`~docextract.testing.tiny_model.TinyModelSpec` validates against
and :func:`~docextract.testing.tiny_model.build_tiny_model` builds from:

* ``qwen2_vl``: ``Qwen2VLForConditionalGeneration``, as Qwen2-VL-Instruct;
* ``idefics3``: ``Idefics3ForConditionalGeneration`` (SigLIP-style vision tower,
  pixel-shuffle connector, Llama text model), as SmolVLM-Instruct.

transformers is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from docextract.testing.tokenizer import add_special_tokens, train_bpe
from docextract.testing.weights import random_model

if TYPE_CHECKING:
    from docextract.testing.tiny_model import TinyModelSpec

__all__ = ["FAMILIES", "Family"]


# -- qwen2_vl -------------------------------------------------------------------------------

# In the order (and so with the relative ids) of the real Qwen2 tokenizer.
_QWEN2_VL_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
    "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip

# The chat template shipped with Qwen2-VL-*-Instruct (chat_template.json).
_QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen2_vl_validate(spec: TinyModelSpec, head_dim: int) -> None:
    if 2 * sum(spec.mrope_section) != head_dim:
        raise ValueError(f"mrope_section must sum to head_dim/2 = {head_dim // 2}")


def _qwen2_vl_processor(spec: TinyModelSpec):
    from transformers import Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    vocab, merges = train_bpe(spec.bpe_vocab_size)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=spec.max_position_embeddings,
    )
    add_special_tokens(tok, _QWEN2_VL_SPECIAL_TOKENS, len(vocab), _QWEN2_VL_CHAT_TEMPLATE)
    tok.eos_token = "<|im_end|>"  # as in Qwen2-VL-Instruct's tokenizer_config
    common = dict(
        patch_size=spec.patch_size,
        temporal_patch_size=spec.temporal_patch_size,
        merge_size=spec.spatial_merge_size,
        min_pixels=spec.min_pixels,
        max_pixels=spec.max_pixels,
    )
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(**common),
        chat_template=_QWEN2_VL_CHAT_TEMPLATE,
    )


def _qwen2_vl_model(spec: TinyModelSpec, tokenizer, seed: int):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tid = tokenizer.convert_tokens_to_ids
    eot, im_end = tid("<|endoftext|>"), tid("<|im_end|>")
    text_config = dict(
        vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, max_window_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads, num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta,
                         "mrope_section": list(spec.mrope_section)},
        bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot, tie_word_embeddings=False,
    )  # fmt: skip
    vision_config = dict(
        depth=spec.vision_depth, embed_dim=spec.vision_embed_dim, num_heads=spec.vision_num_heads,
        hidden_size=spec.hidden_size,  # the merger projects into the text width
        mlp_ratio=spec.vision_mlp_ratio, patch_size=spec.patch_size,
        spatial_merge_size=spec.spatial_merge_size, temporal_patch_size=spec.temporal_patch_size,
    )  # fmt: skip
    config = Qwen2VLConfig(
        text_config=text_config, vision_config=vision_config,
        image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"),
        bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot, tie_word_embeddings=False,
    )  # fmt: skip
    return random_model(
        Qwen2VLForConditionalGeneration,
        config,
        tokenizer,
        spec,
        seed,
        bos="<|endoftext|>",
        eos=["<|im_end|>", "<|endoftext|>"],
        pad="<|endoftext|>",
    )


# -- idefics3 (SmolVLM) -----------------------------------------------------------------------

# SmolVLM-Instruct's special tokens: its base vocabulary's three, the processor's three,
# then the tile tags Idefics3Processor writes around each image's <image> tokens (6x6 grid).
_IDEFICS3_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
)  # fmt: skip

# The chat template shipped with SmolVLM-Instruct (an Idefics3ForConditionalGeneration);
# the processor expands each <image> into tiles, tile tags and image_seq_len <image> tokens.
_IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _idefics3_grid(spec: TinyModelSpec) -> tuple[int, int]:
    """(tiles per side of the largest image, <image> tokens per tile)."""
    per_side = math.ceil(math.isqrt(spec.max_pixels) / spec.tile_size)
    return per_side, (spec.tile_size // spec.patch_size // spec.spatial_merge_size) ** 2


def _idefics3_validate(spec: TinyModelSpec, head_dim: int) -> None:
    if spec.tile_size % (spec.patch_size * spec.spatial_merge_size):
        raise ValueError("tile_size must be a multiple of patch_size * spatial_merge_size")
    if not 1 <= _idefics3_grid(spec)[0] <= 6:  # the tokenizer has <row_1_col_1> .. <row_6_col_6>
        raise ValueError("isqrt(max_pixels) must be at most 6 * tile_size")


def _idefics3_max_image_tokens(spec: TinyModelSpec) -> int:
    per_side, per_tile = _idefics3_grid(spec)
    return (per_side**2 + 1 if per_side > 1 else 1) * per_tile  # the tiles, then the global image


def _idefics3_processor(spec: TinyModelSpec):
    from transformers import GPT2Tokenizer, Idefics3ImageProcessor, Idefics3Processor

    vocab, merges = train_bpe(spec.bpe_vocab_size)
    tok = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=spec.max_position_embeddings,
    )
    add_special_tokens(tok, _IDEFICS3_SPECIAL_TOKENS, len(vocab), _IDEFICS3_CHAT_TEMPLATE)
    # as in SmolVLM-Instruct's tokenizer_config
    tok.bos_token, tok.eos_token, tok.pad_token = "<|im_start|>", "<end_of_utterance>", "<|im_end|>"
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": math.isqrt(spec.max_pixels)}, max_image_size={"longest_edge": spec.tile_size},
        do_image_splitting=True,
    )  # fmt: skip
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=_idefics3_grid(spec)[1],
        chat_template=_IDEFICS3_CHAT_TEMPLATE,
    )


def _idefics3_model(spec: TinyModelSpec, tokenizer, seed: int):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    tid = tokenizer.convert_tokens_to_ids
    bos, eou, pad = tid("<|im_start|>"), tid("<end_of_utterance>"), tid("<|im_end|>")
    text_config = dict(
        model_type="llama", vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads, num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        bos_token_id=bos, eos_token_id=eou, pad_token_id=pad, tie_word_embeddings=False,
    )  # fmt: skip
    vision_config = dict(
        hidden_size=spec.vision_embed_dim, intermediate_size=spec.vision_embed_dim * spec.vision_mlp_ratio,
        num_hidden_layers=spec.vision_depth, num_attention_heads=spec.vision_num_heads,
        image_size=spec.tile_size, patch_size=spec.patch_size,
    )  # fmt: skip
    config = Idefics3Config(
        text_config=text_config, vision_config=vision_config, image_token_id=tid("<image>"),
        scale_factor=spec.spatial_merge_size, bos_token_id=bos, eos_token_id=eou, pad_token_id=pad,
        tie_word_embeddings=False,  # _make_terse sets the input and output embeddings apart
    )  # fmt: skip
    return random_model(
        Idefics3ForConditionalGeneration,
        config,
        tokenizer,
        spec,
        seed,
        bos="<|im_start|>",
        eos=["<end_of_utterance>", "<|endoftext|>"],
        pad="<|im_end|>",
    )


# -- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """What the builder needs of one model family."""

    special_tokens: tuple[str, ...]
    validate: Callable[[TinyModelSpec, int], None]  # (spec, text head_dim): raise ValueError
    max_image_tokens: Callable[[TinyModelSpec], int]
    build_processor: Callable[[TinyModelSpec], Any]  # the processor, holding the tokenizer
    build_model: Callable[[TinyModelSpec, Any, int], Any]  # (spec, tokenizer, seed) -> model


FAMILIES: dict[str, Family] = {
    "qwen2_vl": Family(
        _QWEN2_VL_SPECIAL_TOKENS, _qwen2_vl_validate,
        lambda spec: spec.max_pixels // (spec.patch_size * spec.spatial_merge_size) ** 2,
        _qwen2_vl_processor, _qwen2_vl_model,
    ),
    "idefics3": Family(
        _IDEFICS3_SPECIAL_TOKENS, _idefics3_validate, _idefics3_max_image_tokens,
        _idefics3_processor, _idefics3_model,
    ),
}  # fmt: skip
