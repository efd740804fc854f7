"""Build a small random-weight Qwen2-VL model directory, offline, in seconds.

Why this exists: the tests, the examples and the benchmarks need a *real*
model directory that both transformers and vLLM load -- same architecture
(``Qwen2VLForConditionalGeneration``), same tokenizer special tokens, chat
template, image processor and config fields as Qwen2-VL-Instruct -- but no
model hub is reachable from CI or from the machines we benchmark on. So we
make one: a byte-level BPE tokenizer trained on a built-in corpus, the real
Qwen2-VL chat template and image processor, and a config whose token ids match
that tokenizer, with weights drawn from a fixed seed.

The weights are random. A model built here shows the *mechanics* (image
placeholders expand, vision tokens flow through M-RoPE, constrained decoding
keeps output in the schema's shape, batching and scheduling behave) and the
*cost* of serving a model of its shape; it says nothing about extraction
accuracy. Being random it also samples odd bytes (control characters, lone
UTF-8 pieces) that a trained model seldom emits: good for shaking out the
parsing and validation path, meaningless for output-length statistics of a
real model.

``TINY`` (~1.7M parameters) is for unit and integration tests; ``BENCH``
(~100M parameters) has a text tower big enough for throughput numbers to mean
something on a CPU. Heavy libraries (torch, transformers, tokenizers) are
imported inside functions so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import random
import shutil
import tempfile
from dataclasses import dataclass

__all__ = ["TinyModelSpec", "TINY", "BENCH", "build_tiny_model"]

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


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a generated model. Defaults are the TINY model."""

    # text tower
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    intermediate_size: int = 256
    mrope_section: tuple[int, int, int] = (8, 12, 12)  # sums to head_dim // 2
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    # vision tower
    vision_depth: int = 2
    vision_embed_dim: int = 128  # width of the ViT blocks
    vision_num_heads: int = 2
    vision_mlp_ratio: int = 4
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    # image processor: 224*224 pixels -> 16*16 patches -> at most 64 image tokens
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
        head_dim, rem = divmod(self.hidden_size, self.num_attention_heads)
        if rem or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size/heads/kv heads do not divide evenly")
        if 2 * sum(self.mrope_section) != head_dim:
            raise ValueError(f"mrope_section must sum to head_dim/2 = {head_dim // 2}")
        if self.vision_embed_dim % self.vision_num_heads:
            raise ValueError("vision_embed_dim must be divisible by vision_num_heads")
        if self.vocab_size < self.bpe_vocab_size + len(SPECIAL_TOKENS):
            raise ValueError("vocab_size must hold the BPE vocab plus the special tokens")
        if self.dtype not in ("bfloat16", "float32"):
            raise ValueError("dtype must be 'bfloat16' or 'float32'")

    @property
    def max_image_tokens(self) -> int:
        return self.max_pixels // (self.patch_size * self.spatial_merge_size) ** 2

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["mrope_section"] = list(self.mrope_section)
        return d


TINY = TinyModelSpec()
BENCH = TinyModelSpec(
    hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
    intermediate_size=2816, vision_depth=4, vision_embed_dim=256, vision_num_heads=4,
    max_pixels=448 * 448,  # at most 256 image tokens
    terse=False,  # benchmarks want outputs as long as the schema lets a random model run
)  # fmt: skip


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
    keys = ["invoice_number", "due_date", "unit_price", "line_items", "tax_rate", "vendor_name",
            "customer_name", "total_amount", "currency_code", "animal_species"] + words[-40:]
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


def _build_tokenizer(spec: TinyModelSpec):
    """Train a byte-level BPE with Qwen2's pre-tokenizer; wrap it as Qwen2Tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
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

    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|endoftext|>",
                         pad_token="<|endoftext|>", model_max_length=spec.max_position_embeddings)
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tok.eos_token = "<|im_end|>"  # as in Qwen2-VL-Instruct's tokenizer_config
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != list(range(len(vocab), len(vocab) + len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens got unexpected ids {ids}")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _build_processor(spec: TinyModelSpec, tokenizer):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    common = dict(patch_size=spec.patch_size, temporal_patch_size=spec.temporal_patch_size,
                  merge_size=spec.spatial_merge_size, min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    image_processor = Qwen2VLImageProcessor(**common)
    video_processor = Qwen2VLVideoProcessor(**common)
    return Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                            video_processor=video_processor, chat_template=CHAT_TEMPLATE)


def _build_model(spec: TinyModelSpec, tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration

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
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    if spec.terse:
        _make_terse(model, tokenizer, spec)
    model = model.to(getattr(torch, spec.dtype))
    model.config.dtype = spec.dtype
    model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot)
    return model


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
    """Build tokenizer, processor, chat template, config and safetensors weights into ``out_dir``.

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
        tokenizer = _build_tokenizer(spec)
        _build_processor(spec, tokenizer).save_pretrained(tmp)  # tokenizer + chat_template.jinja too
        model = _build_model(spec, tokenizer, seed)
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
