"""docextract: schema-guaranteed JSON from images and PDFs with vLLM constrained decoding.

The shared core of both front doors (``serve/`` online, ``batch/`` in batch):

* :mod:`docextract.config` - ``ExtractionConfig`` + ``PreprocessOptions``, every default, modes;
* :mod:`docextract.errors` - error kinds (no HTTP: the service maps kinds to statuses);
* :mod:`docextract.tasks`, :mod:`docextract.schema` - tasks, schema checks and the engine schema;
* :mod:`docextract.preprocess` - any input to model-ready pages; page selection, grouping, ids;
* :mod:`docextract.prompts` - messages and the model's chat template;
* :mod:`docextract.requests` - :class:`~docextract.requests.ExtractionRequest`, what every door builds;
* :mod:`docextract.engine` - :class:`~docextract.engine.ExtractionEngine`, the one extraction path;
* :mod:`docextract.validate`, :mod:`docextract.results` - re-validation, typed results;
* :mod:`docextract.models`, :mod:`docextract.cluster` - model families and sources; Ray placement;
* :mod:`docextract.cli` - the ``docextract`` command; :mod:`docextract.evaluation` - ``docextract eval``;
* :mod:`docextract.testing` - the random-weight test model builder.

The core imports nothing from ``serve`` or ``batch`` (the console script hands off to them in
one dispatcher), and its modules import without vLLM, torch or Ray: those are imported when
an engine is built or a Ray job runs.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
