"""Test documents made in code: images with EXIF, forged headers, and PDFs.

The PDFs are written by hand (a few objects and an xref table) so the tests
need no PDF-writing package and every byte is known: vector pages, raster
pages (an embedded JPEG), zero-page documents, and RC4-encrypted documents
with a user or an owner password. ``bench/`` imports this module too.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

__all__ = [
    "PdfPageSpec",
    "blank_page",
    "forged_png",
    "headerless_pdf",
    "image_bytes",
    "jpeg_with_orientation",
    "make_pdf",
    "multi_frame_tiff",
    "page_tree_loop_pdf",
    "raster_page",
    "slow_page",
    "vector_page",
    "widget_only_pdf",
    "zero_page_pdf",
]


# --- images -----------------------------------------------------------------


def image_bytes(
    size: tuple[int, int] = (64, 48),
    *,
    mode: str = "RGB",
    color: object = (200, 30, 30),
    fmt: str = "PNG",
) -> bytes:
    """One solid image encoded as ``fmt``."""
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt)
    return buf.getvalue()


def jpeg_with_orientation(size: tuple[int, int], orientation: int) -> bytes:
    """A JPEG stored as ``size`` whose EXIF says to rotate it (6 = 90 degrees CW).

    The left half is black and the right half white, so a test can tell which
    way it was turned, not only that width and height swapped.
    """
    img = Image.new("RGB", size, (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def multi_frame_tiff(sizes: Sequence[tuple[int, int]], *, colors: Sequence[object] | None = None) -> bytes:
    """A TIFF with one frame (page) per size, as fax machines and scanners write them; each
    frame a different colour with a black square, so a test can tell the frames apart."""
    frames = []
    for i, size in enumerate(sizes):
        img = Image.new("RGB", size, colors[i] if colors else (40 * i % 256, 120, 200))
        img.paste((0, 0, 0), (0, 0, max(1, size[0] // 4), max(1, size[1] // 4)))
        frames.append(img)
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose pixel data is a
    few junk bytes: decoding it would fail, so a loader that reports "too large"
    for it has not tried to decode it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00junk"))
        + _png_chunk(b"IEND", b"")
    )


# --- PDFs -------------------------------------------------------------------


@dataclass(frozen=True)
class PdfPageSpec:
    """One page: size in points, its content stream, and the images it draws
    (resource name -> JPEG bytes with pixel size)."""

    width: float = 612
    height: float = 792
    content: bytes = b""
    images: dict[str, tuple[bytes, int, int]] = field(default_factory=dict)
    #: Extra page dictionary entries, e.g. b"/CropBox [0 0 300 300]".
    extra: bytes = b""


def vector_page(width: float = 612, height: float = 792, *, shapes: int = 40, text: bool = True) -> PdfPageSpec:
    """A page of filled and stroked shapes and (optionally) Helvetica text."""
    ops = [b"0.2 0.3 0.8 rg 1 w"]
    for i in range(shapes):
        x = 20 + (i * 37) % max(1, int(width) - 80)
        y = 20 + (i * 53) % max(1, int(height) - 80)
        ops.append(b"%d %d 50 30 re f %d %d m %d %d l S" % (x, y, x, y, x + 60, y + 45))
        ops.append(b"%d %d m %d %d %d %d %d %d c S" % (x, y, x, y + 10, x + 20, y + 40, x + 55, y + 5))
    if text:
        ops.append(b"0 0 0 rg BT /F1 11 Tf 40 %d Td 14 TL" % (int(height) - 60))
        for i in range(min(40, int(height) // 16)):
            ops.append(b"(Line %d: invoice total 1234.56 EUR due 2026-01-31) '" % i)
        ops.append(b"ET")
    return PdfPageSpec(width, height, b"\n".join(ops))


def raster_page(width: float = 612, height: float = 792, *, dpi: int = 200, seed: int = 0) -> PdfPageSpec:
    """A page that is one full-page JPEG, as a scanner makes, at ``dpi``."""
    px_w, px_h = round(width * dpi / 72), round(height * dpi / 72)
    # Noise-free but non-trivial content so the JPEG decoder has real work.
    small = Image.linear_gradient("L").resize((px_w, px_h)).convert("RGB")
    small.paste((30 + seed % 200, 60, 90), (px_w // 8, px_h // 8, px_w // 2, px_h // 3))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=80)
    content = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (width, height)
    return PdfPageSpec(width, height, content, {"Im0": (buf.getvalue(), px_w, px_h)})


def slow_page(operations: int = 100_000) -> PdfPageSpec:
    """A page whose content stream fills ``operations`` large overlapping curves:
    about a minute of work per 100,000 for either renderer, yet 14 KB compressed."""
    op = b"10 10 m 600 780 300 -50 590 20 c 12 700 l h f\n"
    return PdfPageSpec(612, 792, b"0.5 g\n" + op * operations)


_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


class _Rc4Security:
    """The PDF standard security handler, revision 2 (40-bit RC4): the simplest
    scheme every reader supports, enough to test password handling."""

    _P = -4  # every permission granted

    def __init__(self, user_password: str, owner_password: str, file_id: bytes) -> None:
        user = (user_password.encode("latin-1") + _PAD)[:32]
        owner = (owner_password.encode("latin-1") + _PAD)[:32]
        self.o = _rc4(hashlib.md5(owner).digest()[:5], user)
        self.key = hashlib.md5(user + self.o + struct.pack("<i", self._P) + file_id).digest()[:5]
        self.u = _rc4(self.key, _PAD)

    def encrypt(self, obj_num: int, data: bytes) -> bytes:
        obj_key = hashlib.md5(self.key + struct.pack("<i", obj_num)[:3] + b"\x00\x00").digest()[:10]
        return _rc4(obj_key, data)

    def dictionary(self) -> bytes:
        return b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
            self.o.hex().encode(),
            self.u.hex().encode(),
            self._P,
        )


def make_pdf(
    pages: Sequence[PdfPageSpec],
    *,
    user_password: str | None = None,
    owner_password: str | None = None,
    compress: bool = True,
) -> bytes:
    """Write a PDF with ``pages``; encrypt it when a password is given.

    Args:
        pages: The pages, in order (may be empty: a valid zero-page document).
        user_password: Needed to open the document at all.
        owner_password: Guards permissions only; a document with an owner
            password and no user password opens without one.
        compress: Flate-compress content streams.
    """
    file_id = hashlib.md5(repr(pages).encode()).digest()
    security = None
    if user_password is not None or owner_password is not None:
        security = _Rc4Security(user_password or "", owner_password or user_password or "", file_id)

    objects: dict[int, bytes] = {}
    next_num = 4  # 1 catalog, 2 page tree, 3 font

    def stream(num: int, header: bytes, data: bytes) -> bytes:
        if security is not None:
            data = security.encrypt(num, data)
        return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (header, len(data), data)

    kids = []
    for page in pages:
        page_num, content_num = next_num, next_num + 1
        next_num += 2
        xobjects = []
        for name, (jpeg, px_w, px_h) in page.images.items():
            img_num = next_num
            next_num += 1
            header = (
                b"/Type /XObject /Subtype /Image /Width %d /Height %d"
                b" /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode"
                % (
                    px_w,
                    px_h,
                )
            )
            objects[img_num] = stream(img_num, header, jpeg)
            xobjects.append(b"/%s %d 0 R" % (name.encode(), img_num))
        data = zlib.compress(page.content) if compress else page.content
        objects[content_num] = stream(content_num, b"/Filter /FlateDecode" if compress else b"", data)
        resources = b"/Font << /F1 3 0 R >>"
        if xobjects:
            resources += b" /XObject << %s >>" % b" ".join(xobjects)
        objects[page_num] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Resources << %s >> /Contents %d 0 R %s >>"
            % (page.width, page.height, resources, content_num, page.extra)
        )
        kids.append(b"%d 0 R" % page_num)

    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    trailer_extra = b""
    if security is not None:
        enc_num = next_num
        next_num += 1
        objects[enc_num] = security.dictionary()
        trailer_extra = b" /Encrypt %d 0 R" % enc_num

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n%s\nendobj\n" % (num, objects[num]))
    xref_at = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % next_num)
    for num in range(1, next_num):
        out.write(b"%010d 00000 n \n" % offsets[num])
    id_hex = file_id.hex().encode()
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>]%s >>\nstartxref\n%d\n%%%%EOF\n"
        % (next_num, id_hex, id_hex, trailer_extra, xref_at)
    )
    return out.getvalue()


def zero_page_pdf() -> bytes:
    """A well-formed PDF whose page tree is empty."""
    return make_pdf([])


def blank_page(width: float = 612, height: float = 792) -> PdfPageSpec:
    """A page that draws nothing: white in every renderer."""
    return PdfPageSpec(width, height, b"")


def headerless_pdf(pages: Sequence[PdfPageSpec]) -> bytes:
    """A PDF without its ``%PDF-`` header line (as some mail gateways and broken exporters
    leave them): poppler still renders it, pdfium refuses it."""
    data = make_pdf(pages)
    return data[data.index(b"\n", data.index(b"\n") + 1) + 1 :]


def page_tree_loop_pdf() -> bytes:
    """Two pages whose page tree lists itself as a kid: the counted pages cannot all be found."""
    data = make_pdf([vector_page(200, 200, shapes=2), vector_page(200, 200, shapes=2)])
    # Same length, so the xref offsets stay right: "/Kids [4 0 R 6 0 R]" -> "/Kids [2 0 R 2 0 R]".
    old = b"/Kids [4 0 R 6 0 R]"
    assert old in data
    return data.replace(old, b"/Kids [2 0 R 2 0 R]")


def widget_only_pdf(width: float = 300, height: float = 200) -> bytes:
    """A page whose only content is a form field's appearance (a widget annotation with an
    ``/AP`` stream, as filled-in forms are): renderers that draw annotations show it,
    a renderer that skips form widgets renders a blank page."""
    content = b"0 0 0 rg 20 20 %d %d re f" % (int(width) - 40, int(height) - 40)
    page = PdfPageSpec(width, height, b"")
    data = make_pdf([page], compress=False)
    # Append an appearance stream and a widget annotation as an incremental update.
    head, _, _ = data.rpartition(b"xref\n")
    size = int(data.split(b"/Size ")[1].split()[0])
    ap_num, annot_num, field_num = size, size + 1, size + 2
    page_num = 4
    page_obj_start = data.index(b"\n%d 0 obj\n" % page_num) + 1
    page_obj_end = data.index(b"endobj", page_obj_start)
    page_dict = data[page_obj_start:page_obj_end].split(b"obj\n", 1)[1].strip()
    new_page = page_dict[:-2] + b" /Annots [%d 0 R] >>" % annot_num
    out = io.BytesIO()
    out.write(data)
    offsets = {}
    objs = {
        page_num: new_page,
        ap_num: b"<< /Type /XObject /Subtype /Form /BBox [0 0 %d %d] /Length %d >>\nstream\n%s\nendstream"
        % (int(width), int(height), len(content), content),
        annot_num: b"<< /Type /Annot /Subtype /Widget /Rect [0 0 %d %d] /F 4 /P %d 0 R /Parent %d 0 R"
        b" /AP << /N %d 0 R >> >>" % (int(width), int(height), page_num, field_num, ap_num),
        field_num: b"<< /FT /Tx /Kids [%d 0 R] >>" % annot_num,
        1: b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [%d 0 R] >> >>" % field_num,
    }
    for num, body in sorted(objs.items()):
        offsets[num] = out.tell()
        out.write(b"%d 0 obj\n%s\nendobj\n" % (num, body))
    xref_at = out.tell()
    out.write(b"xref\n")
    for num in sorted(offsets):
        out.write(b"%d 1\n%010d 00000 n \n" % (num, offsets[num]))
    prev = int(data.rsplit(b"startxref\n", 1)[1].split()[0])
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (field_num + 1, prev, xref_at)
    )
    del head
    return out.getvalue()
