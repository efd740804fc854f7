"""``image_card``: a quick quality card for any image (the seeds' image-analysis example)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NAME", "VERSION", "INSTRUCTIONS", "Model"]

NAME = "image_card"
VERSION = "1"
INSTRUCTIONS = (
    "Look at the image. Rate its technical quality (sharpness, lighting, framing) as "
    "good, okay or bad; describe what it shows in one or two sentences; and write one "
    "question a viewer could ask about it."
)


class Model(BaseModel):
    """Quality rating, short description and one question about an image."""

    model_config = ConfigDict(extra="forbid", title="ImageCard")

    quality: Literal["good", "okay", "bad"] = Field(description="Technical quality of the image.")
    description: str = Field(max_length=500, description="What the image shows, in one or two sentences.")
    question: str = Field(max_length=300, description="A question a viewer could ask about the image.")
