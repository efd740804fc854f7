"""The batch front door: Ray Data maps the shared ExtractionEngine over image/PDF datasets.

``python -m batch.run`` (also ``docextract batch``, and as a ``ray job submit``
entrypoint) reads folders, globs and Parquet datasets, runs the CPU work
(decode, EXIF, resize, PDF render) in Ray tasks and the engine in an actor
pool, and writes Parquet in labelr's layout with a ``config.json``.

Modules, in the order data flows:

* :mod:`batch.options`: :class:`~batch.options.BatchOptions`, the job's settings;
* :mod:`batch.inputs`: input kinds (registry), ids, PDF page expansion;
* :mod:`batch.preprocess`: the CPU stage;
* :mod:`batch.actor`: the engine stage (one ``ExtractionEngine`` per actor);
* :mod:`batch.pipeline`: the Ray Data pipeline and the driver's write loop;
* :mod:`batch.outputs`, :mod:`batch.resume`, :mod:`batch.summary`: part files,
  ``config.json``, resume, ``summary.json``;
* :mod:`batch.rows`: the Arrow schemas between stages;
* :mod:`batch.run`: the command line.

Importing these modules imports neither Ray nor vLLM; the stages import them when they run.
"""

from __future__ import annotations

__all__: list[str] = []
