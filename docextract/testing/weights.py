"""The tiny models' weights: random from a seed, with a bias that keeps a random model's outputs short.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docextract.testing.tiny_model import TinyModelSpec

__all__ = ["random_model"]

# Logit bias by what a token's text starts with. Under a JSON grammar these are the
# tokens that end a string ('"'), a container (']', '}') or a value (','), and 'null'.
_TERSE_BIAS = (('"', 6.0), ("}", 5.0), ("]", 5.0), (",", 4.0), ("n", 2.0))


def random_model(model_cls, config, tokenizer, spec: TinyModelSpec, seed: int, *, bos: str, eos: list[str], pad: str):
    """``model_cls(config)`` with random weights from ``seed``, the terse bias, ``spec.dtype`` and a generation config."""
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
