"""docextract: schema-guaranteed JSON from images and PDFs with vLLM constrained decoding.

The package's modules are importable without vLLM, torch or Ray (they are
imported when an engine is built). Start with :class:`docextract.engine.ExtractionEngine`,
:func:`docextract.tasks.load_task` and :func:`docextract.documents.load_document`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
