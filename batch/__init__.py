"""The batch front door: Ray Data maps the shared ExtractionEngine over image/PDF datasets.

Planned (issue 4): ``python -m batch.run`` (also via ``ray job submit``), CPU
preprocessing tasks, an actor pool of :class:`docextract.engine.ExtractionEngine`,
and Parquet output in the labelr layout with a ``config.json``.
"""
