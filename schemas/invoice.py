"""``invoice``: header, parties, line items and totals of an invoice page or document."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NAME", "VERSION", "INSTRUCTIONS", "Model", "LineItem", "Party"]

NAME = "invoice"
VERSION = "1"
INSTRUCTIONS = (
    "The image shows an invoice. Extract the invoice number, the issue and due dates "
    "(YYYY-MM-DD), the seller and the buyer (name, postal address, tax or VAT id), every "
    "line item (description, quantity, unit price, line amount), the subtotal, the tax "
    "amount, the total and the currency as an ISO 4217 code. Copy text as printed; write "
    "amounts as plain numbers without currency symbols. Use null for anything the "
    "invoice does not show."
)


class Party(BaseModel):
    """A seller or a buyer."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(max_length=200, description="Company or person name.")
    address: str | None = Field(max_length=400, description="Postal address on one line.")
    tax_id: str | None = Field(max_length=40, description="Tax or VAT identification number.")


class LineItem(BaseModel):
    """One line of the invoice."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(max_length=300, description="What was sold.")
    quantity: float | None = Field(description="Quantity, as a number.")
    unit_price: float | None = Field(description="Price of one unit.")
    amount: float | None = Field(description="Line total.")


class Model(BaseModel):
    """An invoice: number, dates, parties, line items and totals."""

    model_config = ConfigDict(extra="forbid", title="Invoice")

    invoice_number: str | None = Field(max_length=64, description="Invoice number or id.")
    invoice_date: datetime.date | None = Field(description="Issue date.")
    due_date: datetime.date | None = Field(description="Payment due date.")
    seller: Party
    buyer: Party
    line_items: list[LineItem] = Field(max_length=100, description="Invoice lines, in order.")
    subtotal: float | None = Field(description="Total before tax.")
    tax: float | None = Field(description="Total tax amount.")
    total: float | None = Field(description="Amount due, tax included.")
    currency: str | None = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code.")
