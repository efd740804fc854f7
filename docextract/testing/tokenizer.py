"""The tiny models' tokenizer: a byte-level BPE trained here, on a built-in corpus, in about a second.

Why train one: a released checkpoint's tokenizer would have to be downloaded, and
no model hub is reachable where the tiny models are built. Byte-level BPE with
Qwen2's pre-tokenizer is what both families' real tokenizers are, so any text
round-trips and the grammar backends see the same kind of vocabulary (multi-byte
merges, partial UTF-8 tokens) as on a real model. The corpus mixes prose,
document field names and JSON so that the merges cover what extraction emits.

The special tokens of each family are added after the BPE, in the family's own
order, by :func:`add_special_tokens`. The tokenizers and transformers libraries
are imported inside the functions.
"""

from __future__ import annotations

import json
import random

__all__ = ["add_special_tokens", "corpus", "train_bpe"]

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


def corpus() -> list[str]:
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


def train_bpe(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE (Qwen2's pre-tokenizer) of at most ``vocab_size`` tokens on the corpus: (vocab, merges)."""
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
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = model["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    if len(vocab) > vocab_size or len(vocab) < 256:
        raise RuntimeError(f"unexpected BPE vocab size {len(vocab)}")
    return vocab, merges


def add_special_tokens(tok, special: tuple[str, ...], n_bpe: int, chat_template: str):
    """Add ``special[1:]`` (``special[0]`` is already there) and check they got consecutive ids after the BPE."""
    tok.add_special_tokens({"additional_special_tokens": list(special[1:])})
    ids = tok.convert_tokens_to_ids(list(special))
    if ids != list(range(n_bpe, n_bpe + len(special))):
        raise RuntimeError(f"special tokens got unexpected ids {ids}")
    tok.chat_template = chat_template  # vLLM falls back to the tokenizer's template
    return tok
