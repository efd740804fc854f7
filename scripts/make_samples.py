"""Regenerate the bundled sample invoice image and PDF in docextract/samples/.

The samples are synthetic (drawn with Pillow), so they can be shipped and
re-made anywhere. Usage: python scripts/make_samples.py
"""

from __future__ import annotations

import pathlib

from PIL import Image, ImageDraw, ImageFont

OUT = pathlib.Path(__file__).resolve().parent.parent / "docextract" / "samples"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def invoice_page(number: str, page: int, pages: int, items: list[tuple[str, int, float]], final: bool) -> Image.Image:
    img = Image.new("RGB", (850, 1100), "white")
    draw = ImageDraw.Draw(img)
    big, body = _font(34), _font(18)
    draw.text((60, 50), "INVOICE", font=big, fill="black")
    draw.text((560, 60), f"No. {number}", font=body, fill="black")
    draw.text((560, 90), "Date: 2026-03-14", font=body, fill="black")
    draw.text((560, 120), "Due: 2026-04-13", font=body, fill="black")
    draw.text((60, 170), "Seller: Acme Optics SARL", font=body, fill="black")
    draw.text((60, 195), "12 rue des Lilas, 75011 Paris, France", font=body, fill="black")
    draw.text((60, 220), "VAT FR40123456789", font=body, fill="black")
    draw.text((460, 170), "Bill to: Northwind Labs GmbH", font=body, fill="black")
    draw.text((460, 195), "Hauptstrasse 5, 10115 Berlin", font=body, fill="black")
    draw.text((460, 220), "VAT DE811907980", font=body, fill="black")
    y = 300
    draw.line((60, y - 10, 790, y - 10), fill="black", width=2)
    for col, x in (("Description", 60), ("Qty", 470), ("Unit price", 560), ("Amount", 690)):
        draw.text((x, y), col, font=body, fill="black")
    y += 40
    for desc, qty, price in items:
        draw.text((60, y), desc, font=body, fill="black")
        draw.text((470, y), str(qty), font=body, fill="black")
        draw.text((560, y), f"{price:.2f}", font=body, fill="black")
        draw.text((690, y), f"{qty * price:.2f}", font=body, fill="black")
        y += 34
    if final:
        subtotal = 1234.50
        y += 30
        draw.line((460, y - 10, 790, y - 10), fill="black", width=1)
        for label, value in (("Subtotal", subtotal), ("VAT 20%", subtotal * 0.2), ("Total EUR", subtotal * 1.2)):
            draw.text((460, y), label, font=body, fill="black")
            draw.text((690, y), f"{value:.2f}", font=body, fill="black")
            y += 30
    draw.text((380, 1050), f"Page {page}/{pages}", font=body, fill="gray")
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    first = [("Lens cleaning kit", 10, 12.50), ("Microfiber cloth (pack of 5)", 20, 4.90), ("Frame repair", 3, 45.00)]
    second = [("Anti-glare coating", 8, 60.00), ("Protective case", 15, 7.57)]
    invoice_page("INV-2026-0042", 1, 1, first + second, True).save(OUT / "invoice.png", optimize=True)
    pages = [invoice_page("INV-2026-0043", 1, 2, first, False), invoice_page("INV-2026-0043", 2, 2, second, True)]
    pages = [p.convert("L") for p in pages]  # grey pages keep the PDF small
    pages[0].save(OUT / "invoice.pdf", save_all=True, append_images=pages[1:], resolution=100.0)
    for path in sorted(OUT.iterdir()):
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
