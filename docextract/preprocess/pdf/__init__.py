"""PDF pages to images: :func:`~docextract.preprocess.pdf.api.render_pdf_pages` behind a wall-clock
limit, with pdfium (:mod:`.pdfium`, a worker process) and poppler (:mod:`.poppler`, ``pdftoppm``)
sharing :mod:`.common`. Nothing is imported here, so the pdfium worker process loads only what it needs."""
