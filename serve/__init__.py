"""The online front door: a Ray Serve application over the shared :class:`~docextract.engine.ExtractionEngine`.

``build_app(args)`` (:mod:`serve.app`) deploys one replica deployment per served
model, each replica holding one engine (:mod:`serve.deployment`), behind a
FastAPI ingress (:mod:`serve.ingress`, routes in :mod:`serve.http`) that
preprocesses requests and chooses the model by name. Its ``args`` are a
:class:`serve.config.ServeAppConfig`: a list of :class:`docextract.config.ExtractionConfig`
plus Serve settings and service limits. The APIs: native ``/v1/extract``
(:mod:`serve.extract_api`), OpenAI's ``/v1/chat/completions`` (:mod:`serve.openai_api`),
TGI's ``/generate`` (:mod:`serve.tgi`), ``/v1/models``, ``/v1/tasks``,
``/healthz`` and ``/metrics`` (:mod:`serve.metrics`). ``docextract serve`` is :mod:`serve.cli`;
``serve/serve_config.yaml`` is the config for ``serve run`` / ``serve deploy``.

Import Ray Serve as ``from ray import serve as ray_serve`` so it never shadows this
package. The modules that parse and check requests (``config``, ``errors``,
``openai_api``, ``tgi``, ``url_fetch``, ``extract_api``) import neither Ray nor vLLM.
"""

__all__: list[str] = []
