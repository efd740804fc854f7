"""``price_tag``: a shelf price tag, as in Open Food Facts price tag extraction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NAME", "VERSION", "INSTRUCTIONS", "Model", "Unit"]

NAME = "price_tag"
VERSION = "1"
INSTRUCTIONS = (
    "The image shows a price tag from a shop shelf. Extract the product name as written, "
    "the price to pay, its currency as an ISO 4217 code, the price per unit and that unit "
    "when the tag shows them, and whether the tag advertises a discount or promotion. "
    "Use null for anything the tag does not show."
)

Unit = Literal["KILOGRAM", "LITER", "UNIT"]


class Model(BaseModel):
    """One price tag. Units follow Open Food Facts prices (per kg, per litre, per unit)."""

    model_config = ConfigDict(extra="forbid", title="PriceTag")

    product_name: str | None = Field(max_length=200, description="Product name as printed on the tag.")
    price: float | None = Field(ge=0, description="Price to pay, in the tag's currency.")
    currency: str | None = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR.")
    unit_price: float | None = Field(ge=0, description="Price per unit (e.g. per kilogram), if shown.")
    unit: Unit | None = Field(description="Unit that unit_price refers to.")
    is_discounted: bool = Field(description="True when the tag advertises a discount or promotion.")
