"""Build small random-weight vision-language model directories, offline, in seconds.

Why this exists: the tests, the examples and the benchmarks need a *real*
model directory that both transformers and vLLM load -- same architecture,
tokenizer special tokens, chat template, image processor and config fields as
a released checkpoint -- but no model hub is reachable from CI or from the
machines we benchmark on. So we make one: a byte-level BPE tokenizer trained on
a built-in corpus, the family's real chat template and image processor, and a
config whose token ids match that tokenizer, with weights drawn from a fixed
seed. Two families are registered (``_FAMILIES``): ``qwen2_vl``
(``Qwen2VLForConditionalGeneration``, as Qwen2-VL-Instruct) and ``idefics3``
(``Idefics3ForConditionalGeneration``: SigLIP-style vision tower, pixel-shuffle
connector, Llama text model, as SmolVLM-Instruct).

The weights are random. A model built here shows the *mechanics* (image
placeholders expand, vision tokens reach the text model, constrained decoding
keeps output in the schema's shape, batching and scheduling behave) and the
*cost* of serving a model of its shape; it says nothing about extraction
accuracy. Being random it also samples odd bytes (control characters, lone
UTF-8 pieces) that a trained model seldom emits: good for shaking out the
parsing and validation path, meaningless for output-length statistics of a
real model.

``TINY`` (~1.7M parameters) is for unit and integration tests; ``BENCH``
(~100M parameters) has a text tower big enough for throughput numbers to mean
something on a CPU; ``TINY_IDEFICS3`` (~1.0M parameters) is the test model of
the second family. Heavy libraries (torch, transformers, tokenizers) are
imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TinyModelSpec", "TINY", "BENCH", "TINY_IDEFICS3", "build_tiny_model"]

MARKER_FILE = "docextract_tiny_model.json"
_MARKER_VERSION = 2

# In the order (and so with the relative ids) of the real Qwen2 tokenizer.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
    "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip

# The chat template shipped with Qwen2-VL-*-Instruct (chat_template.json).
CHAT_TEMPLATE = (
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

# SmolVLM-Instruct's special tokens: its base vocabulary's three, the processor's three,
# then the tile tags Idefics3Processor writes around each image's <image> tokens (6x6 grid).
IDEFICS3_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
)  # fmt: skip

# The chat template shipped with SmolVLM-Instruct (an Idefics3ForConditionalGeneration);
# the processor expands each <image> into tiles, tile tags and image_seq_len <image> tokens.
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a generated model. Defaults are the TINY model."""

    family: str = "qwen2_vl"  # a key of _FAMILIES: "qwen2_vl" or "idefics3"
    # text tower
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    intermediate_size: int = 256
    mrope_section: tuple[int, int, int] = (8, 12, 12)  # qwen2_vl: sums to head_dim // 2
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    # vision tower
    vision_depth: int = 2
    vision_embed_dim: int = 128  # width of the ViT blocks
    vision_num_heads: int = 2
    vision_mlp_ratio: int = 4
    patch_size: int = 14
    spatial_merge_size: int = 2  # idefics3: the connector's pixel-shuffle scale_factor
    temporal_patch_size: int = 2  # qwen2_vl only
    tile_size: int = 64  # idefics3 only: the vision tower's square input (max_image_size)
    # image processor. qwen2_vl: 224*224 pixels -> 16*16 patches -> at most 64 image tokens.
    # idefics3: the longest edge is resized to isqrt(max_pixels), then cut into tile_size tiles.
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224
    # tokenizer / embeddings
    bpe_vocab_size: int = 2000  # learned BPE tokens (256 bytes included)
    vocab_size: int = 2048  # embedding rows: BPE + special tokens, padded
    dtype: str = "bfloat16"
    # Bias the random model towards closing strings, numbers, arrays and objects
    # early (see _make_terse): short outputs keep the test suite fast.
    terse: bool = True

    def __post_init__(self) -> None:
        family = _FAMILIES.get(self.family)
        if family is None:
            raise ValueError(f"unknown family {self.family!r}; known: {sorted(_FAMILIES)}")
        head_dim, rem = divmod(self.hidden_size, self.num_attention_heads)
        if rem or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size/heads/kv heads do not divide evenly")
        if self.vision_embed_dim % self.vision_num_heads:
            raise ValueError("vision_embed_dim must be divisible by vision_num_heads")
        if self.vocab_size < self.bpe_vocab_size + len(family.special_tokens):
            raise ValueError("vocab_size must hold the BPE vocab plus the special tokens")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError("dtype must be 'bfloat16' or 'float32'")
        family.validate(self, head_dim)

    @property
    def max_image_tokens(self) -> int:
        """Most image-embedding positions (placeholder tokens) one image takes."""
        return _FAMILIES[self.family].max_image_tokens(self)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["mrope_section"] = list(self.mrope_section)
        return d


_WORDS = (
    "the of and to a in is it you that he was for on are with as his they be at one have this from or had "
    "by hot word but what some we can out other were all there when up use your how said an each she "
    "which do their time if will way about many then them write would like so these her long make thing "
    "see him two has look more day could go come did number sound no most people my over know water than "
    "call first who may down side been now find any new work part take get place made live where after "
    "back little only round man year came show every good me give our under name very through just form "
    "sentence great think say help low line differ turn cause much mean before move right boy old too "
    "same tell does set three want air well also play small end put home read hand port large spell add "
    "even land here must big high such follow act why ask men change went light kind off need house "
    "picture try us again animal point mother world near build self earth father head stand own page "
    "should country found answer school grow study still learn plant cover food sun four between state "
    "keep eye never last let thought city tree cross farm hard start might story saw far sea draw left "
    "late run invoice receipt vendor customer total subtotal tax currency amount quantity price unit date due "
    "item description address phone email account bank payment method discount shipping order reference "
    "document image photo caption label quality cat species breed confidence extract schema field value "
    "string integer boolean null true false array object properties required enum minimum maximum title "
    "format json"
)


def _corpus() -> list[str]:
    """A deterministic training corpus: prose, document fields, JSON, numbers."""
    rng = random.Random(1234)
    words = _WORDS.split()
    keys = [
        "invoice_number",
        "due_date",
        "unit_price",
        "line_items",
        "tax_rate",
        "vendor_name",
        "customer_name",
        "total_amount",
        "currency_code",
        "animal_species",
    ] + words[-40:]
    lines = ["0123456789 " * 8, "".join(chr(c) for c in range(32, 127)) + " äöüßéèçñ€£¥ 中文 日本語"]
    lines += [" ".join(w.upper() for w in words), " ".join(w.capitalize() for w in words)] * 3
    for _ in range(3000):
        sent = [rng.choice(words) for _ in range(rng.randint(4, 16))]
        sent[0] = sent[0].capitalize()
        lines.append(" ".join(sent) + rng.choice([".", ".", "?", "!", ":", ","]))
        obj = {}
        for k in rng.sample(keys, rng.randint(1, 6)):
            r = rng.random()
            if r < 0.3:
                obj[k] = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))).capitalize()
            elif r < 0.55:
                obj[k] = rng.randint(0, 100000)
            elif r < 0.75:
                obj[k] = round(rng.uniform(0, 10000), 2)
            elif r < 0.85:
                obj[k] = f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            elif r < 0.92:
                obj[k] = rng.choice([True, False, None])
            else:
                obj[k] = [rng.choice(words) for _ in range(rng.randint(0, 3))]
        lines.append(json.dumps(obj, indent=rng.choice([None, 2]), ensure_ascii=False))
    return lines


def _train_bpe(spec: TinyModelSpec) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE (Qwen2's pre-tokenizer) on the corpus: (vocab, merges)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.bpe_vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = model["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    if len(vocab) > spec.bpe_vocab_size or len(vocab) < 256:
        raise RuntimeError(f"unexpected BPE vocab size {len(vocab)}")
    return vocab, merges


def _add_special_tokens(tok, special: tuple[str, ...], n_bpe: int, chat_template: str):
    """Add ``special[1:]`` (``special[0]`` is already there) and check they got consecutive ids after the BPE."""
    tok.add_special_tokens({"additional_special_tokens": list(special[1:])})
    ids = tok.convert_tokens_to_ids(list(special))
    if ids != list(range(n_bpe, n_bpe + len(special))):
        raise RuntimeError(f"special tokens got unexpected ids {ids}")
    tok.chat_template = chat_template  # vLLM falls back to the tokenizer's template
    return tok


def _instantiate(model_cls, config, tokenizer, spec: TinyModelSpec, seed: int, *, bos: str, eos: list[str], pad: str):
    """Random weights from ``seed``, the terse bias, the dtype, a generation config."""
    import torch
    from transformers import GenerationConfig

    tid = tokenizer.convert_tokens_to_ids
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    if spec.terse:
        _make_terse(model, tokenizer, spec)
    model = model.to(getattr(torch, spec.dtype))
    model.config.dtype = spec.dtype
    model.generation_config = GenerationConfig(bos_token_id=tid(bos), eos_token_id=tid(eos), pad_token_id=tid(pad))
    return model


# -- qwen2_vl -------------------------------------------------------------------------------


def _qwen2_vl_validate(spec: TinyModelSpec, head_dim: int) -> None:
    if 2 * sum(spec.mrope_section) != head_dim:
        raise ValueError(f"mrope_section must sum to head_dim/2 = {head_dim // 2}")


def _qwen2_vl_processor(spec: TinyModelSpec):
    from transformers import Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    vocab, merges = _train_bpe(spec)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=spec.max_position_embeddings,
    )
    _add_special_tokens(tok, SPECIAL_TOKENS, len(vocab), CHAT_TEMPLATE)
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
        chat_template=CHAT_TEMPLATE,
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
    return _instantiate(
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

    vocab, merges = _train_bpe(spec)
    tok = GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=spec.max_position_embeddings,
    )
    _add_special_tokens(tok, IDEFICS3_SPECIAL_TOKENS, len(vocab), IDEFICS3_CHAT_TEMPLATE)
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
        chat_template=IDEFICS3_CHAT_TEMPLATE,
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
    return _instantiate(
        Idefics3ForConditionalGeneration,
        config,
        tokenizer,
        spec,
        seed,
        bos="<|im_start|>",
        eos=["<end_of_utterance>", "<|endoftext|>"],
        pad="<|im_end|>",
    )


@dataclass(frozen=True)
class _Family:
    special_tokens: tuple[str, ...]
    validate: Callable[[TinyModelSpec, int], None]  # (spec, text head_dim): raise ValueError
    max_image_tokens: Callable[[TinyModelSpec], int]
    build_processor: Callable[[TinyModelSpec], Any]  # the processor, holding the tokenizer
    build_model: Callable[[TinyModelSpec, Any, int], Any]  # (spec, tokenizer, seed) -> model


_FAMILIES: dict[str, _Family] = {
    "qwen2_vl": _Family(
        SPECIAL_TOKENS, _qwen2_vl_validate,
        lambda spec: spec.max_pixels // (spec.patch_size * spec.spatial_merge_size) ** 2,
        _qwen2_vl_processor, _qwen2_vl_model,
    ),
    "idefics3": _Family(
        IDEFICS3_SPECIAL_TOKENS, _idefics3_validate, _idefics3_max_image_tokens,
        _idefics3_processor, _idefics3_model,
    ),
}  # fmt: skip

TINY = TinyModelSpec()
BENCH = TinyModelSpec(
    hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
    intermediate_size=2816, vision_depth=4, vision_embed_dim=256, vision_num_heads=4,
    max_pixels=448 * 448,  # at most 256 image tokens
    terse=False,  # benchmarks want outputs as long as the schema lets a random model run
)  # fmt: skip
# 64x64 tiles of 8x8 patches, pixel-shuffled 2x2: 16 <image> tokens a tile. Longest edge 128:
# at most 2x2 tiles plus the global image, 80 <image> tokens (94 prompt tokens with the tile tags).
TINY_IDEFICS3 = TinyModelSpec(
    family="idefics3", vision_embed_dim=64, patch_size=8, tile_size=64, max_pixels=128 * 128,
)  # fmt: skip


# Logit bias by what a token's text starts with. Under a JSON grammar these are the
# tokens that end a string ('"'), a container (']', '}') or a value (','), and 'null'.
_TERSE_BIAS = (('"', 6.0), ("}", 5.0), ("]", 5.0), (",", 4.0), ("n", 2.0))


def _make_terse(model, tokenizer, spec: TinyModelSpec) -> None:
    """Give every token a fixed logit bias on top of its random logit.

    Why: a random model under greedy decoding repeats one token until a string
    hits its maxLength, and a number never ends ("718718..."), so outputs run to
    max_tokens. Here one residual dimension is held constant (every token
    embedding has 1.0 there, the random weights add little), so after the final
    RMSNorm it is about sqrt(hidden_size) for every position, and the lm_head
    column for that dimension turns it into a per-token bias. Tokens that close
    things win wherever the grammar allows them; elsewhere the random logits
    decide. The grammar still decides what is *valid*: this changes only which
    valid output a random model picks.
    """
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = 1.0
        head = model.get_output_embeddings().weight
        head[:, 0] = 0.0
        scale = spec.hidden_size**0.5
        for token_id in range(len(tokenizer)):
            text = tokenizer.decode([token_id])
            bias = next((b for prefix, b in _TERSE_BIAS if text.startswith(prefix)), 0.0)
            head[token_id, 0] = bias / scale


def _is_build_of(path: pathlib.Path, wanted: dict) -> bool:
    try:
        marker = json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return all(marker.get(k) == v for k, v in wanted.items())


def build_tiny_model(
    out_dir: str | os.PathLike,
    spec: TinyModelSpec = TINY,
    *,
    seed: int = 0,
    overwrite: bool = False,
) -> pathlib.Path:
    """Build tokenizer, processor, chat template, config and safetensors weights of ``spec.family`` into ``out_dir``.

    Returns the directory. If it already holds a complete build of the same
    ``spec`` and ``seed`` (recorded in ``docextract_tiny_model.json``, written
    last) it is returned as is, unless ``overwrite``. A previous build (of any
    spec) is replaced; a non-empty directory without the marker is never
    deleted (``FileExistsError``). The build happens in a sibling temporary
    directory renamed into place, so a crash never leaves a half-built model
    that looks complete, and concurrent builders of the same directory are safe.
    """
    out = pathlib.Path(out_dir).expanduser().resolve()
    wanted = {"version": _MARKER_VERSION, "seed": seed, "spec": spec.to_json()}
    if not overwrite and _is_build_of(out, wanted):
        return out
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER_FILE).exists():
        raise FileExistsError(f"{out} is not empty and holds no {MARKER_FILE}; refusing to replace it")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        family = _FAMILIES[spec.family]
        processor = family.build_processor(spec)
        processor.save_pretrained(tmp)  # tokenizer + chat_template.jinja too
        model = family.build_model(spec, processor.tokenizer, seed)
        model.save_pretrained(tmp)  # model.safetensors, config.json, generation_config.json
        n_params = sum(p.numel() for p in model.parameters())
        (tmp / MARKER_FILE).write_text(json.dumps({**wanted, "num_parameters": n_params}, indent=2))
        if not overwrite and _is_build_of(out, wanted):
            return out  # a concurrent builder finished first
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
