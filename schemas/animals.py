"""``animals``: the TGI structured-generation example (animals seen in a picture)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NAME", "VERSION", "INSTRUCTIONS", "Model"]

NAME = "animals"
VERSION = "1"
INSTRUCTIONS = (
    "Look at the image and report where it was taken, what the animals are doing, "
    "how many animals are visible (1 to 5) and which animals they are."
)


class Model(BaseModel):
    """Animals visible in an image, as in TGI's guidance example."""

    model_config = ConfigDict(extra="forbid", title="Animals")

    location: str = Field(max_length=200, description="Where the picture was taken.")
    activity: str = Field(max_length=200, description="What the animals are doing.")
    animals_seen: int = Field(ge=1, le=5, description="Number of animals visible.")
    animals: list[Annotated[str, Field(max_length=50)]] = Field(
        max_length=5, description="The animals visible, one name each."
    )
