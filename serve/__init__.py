"""The online front door: a Ray Serve application over the shared ExtractionEngine.

Planned (issue 3): replica deployments each holding one
:class:`docextract.engine.ExtractionEngine`, a FastAPI ingress with the native
``/v1/extract`` API and an OpenAI-compatible ``/v1/chat/completions``, and
``build_app(args)`` validated against :class:`docextract.config.ExtractionConfig`.
Import Ray Serve as ``from ray import serve as ray_serve`` so it never shadows this package.
"""
