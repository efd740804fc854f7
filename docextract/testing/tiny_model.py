"""Build small random-weight vision-language model directories, offline, in seconds.

Why this exists: the tests, the examples and the benchmarks need a *real*
model directory that both transformers and vLLM load -- same architecture,
tokenizer special tokens, chat template, image processor and config fields as
a released checkpoint -- but no model hub is reachable from CI or from the
machines we benchmark on. So we make one: a byte-level BPE tokenizer trained on
a built-in corpus, the family's real chat template and image processor, and a
config whose token ids match that tokenizer, with weights drawn from a fixed
seed. Two families are registered in :mod:`.families`: ``qwen2_vl``
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
the second family.

This module holds the specs and the builder; :mod:`.families` what each family
needs, :mod:`.tokenizer` the locally trained tokenizer and :mod:`.weights` the
random weights. Heavy libraries (torch, transformers, tokenizers) are imported
inside functions so importing any of them stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from dataclasses import dataclass

from docextract.testing.families import FAMILIES

__all__ = ["TinyModelSpec", "TINY", "BENCH", "TINY_IDEFICS3", "build_tiny_model"]

MARKER_FILE = "docextract_tiny_model.json"
_MARKER_VERSION = 2


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a generated model. Defaults are the TINY model."""

    family: str = "qwen2_vl"  # a key of families.FAMILIES: "qwen2_vl" or "idefics3"
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
    # early (see weights._make_terse): short outputs keep the test suite fast.
    terse: bool = True

    def __post_init__(self) -> None:
        family = FAMILIES.get(self.family)
        if family is None:
            raise ValueError(f"unknown family {self.family!r}; known: {sorted(FAMILIES)}")
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
        return FAMILIES[self.family].max_image_tokens(self)

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
# 64x64 tiles of 8x8 patches, pixel-shuffled 2x2: 16 <image> tokens a tile. Longest edge 128:
# at most 2x2 tiles plus the global image, 80 <image> tokens (94 prompt tokens with the tile tags).
TINY_IDEFICS3 = TinyModelSpec(
    family="idefics3", vision_embed_dim=64, patch_size=8, tile_size=64, max_pixels=128 * 128,
)  # fmt: skip


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
        family = FAMILIES[spec.family]
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
