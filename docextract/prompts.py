"""Build the prompt for a task: chat messages in, the model's own prompt text out.

The prompt is separate from the output constraint (the schema goes to the
grammar backend in :mod:`docextract.engine`); showing the schema in the prompt
as well only helps the model choose *what* to write. The text is rendered by
the model's own chat template through its processor, so image placeholders
and special tokens are the model's, never hand-written here.
"""

from __future__ import annotations

import json
from typing import Any

from docextract.tasks import TaskSpec

__all__ = ["build_messages", "render_prompt"]


def build_messages(
    task: TaskSpec,
    num_images: int,
    *,
    include_schema: bool = True,
    system_prompt: str | None = None,
    page_numbers: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Chat messages (Hugging Face multimodal format) asking for ``task`` on ``num_images`` images."""
    text = task.instructions
    if num_images > 1:
        pages = ", ".join(str(p) for p in page_numbers) if page_numbers else f"1 to {num_images}"
        text = f"The {num_images} images are the pages ({pages}) of one document, in order.\n{text}"
    if include_schema:
        schema = json.dumps(task.json_schema, separators=(",", ":"), ensure_ascii=False)
        text = f"{text}\nAnswer with one JSON object that conforms to this JSON Schema:\n{schema}"
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": text})
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": content})
    return messages


def render_prompt(processor: Any, messages: list[dict[str, Any]]) -> str:
    """The prompt text for ``messages`` from the model's chat template (generation prompt added)."""
    template_owner = (
        processor if getattr(processor, "chat_template", None) else getattr(processor, "tokenizer", processor)
    )
    return template_owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
