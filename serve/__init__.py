"""The online front door: a Ray Serve application over the shared :class:`~docextract.engine.ExtractionEngine`.

``build_app(args)`` (:mod:`serve.app`) deploys one replica deployment per served
model, each replica holding one engine (:mod:`serve.deployment`), behind a
FastAPI ingress (:mod:`serve.ingress`: model choice, task cache, input loading, replica
calls) that preprocesses requests and chooses the model by name. The app
(:mod:`serve.http`) has one router per protocol (:mod:`serve.protocols`), each turning
its request into the one internal request and the engine's result back into its shape;
:mod:`serve.errors` is the only place where an error kind becomes an HTTP status. Its ``args`` are a
:class:`serve.config.ServeAppConfig`: a list of :class:`docextract.config.ExtractionConfig`
plus Serve settings and service limits. The APIs: native ``/v1/extract``
(:mod:`serve.protocols.native_models`), OpenAI's ``/v1/chat/completions`` (:mod:`serve.protocols.openai_models`),
TGI's ``/generate`` (:mod:`serve.protocols.tgi_models`), ``/v1/models``, ``/v1/tasks``,
``/healthz`` and ``/metrics`` (:mod:`serve.metrics`). ``docextract serve`` is :mod:`serve.cli`;
``serve/serve_config.yaml`` is the config for ``serve run`` / ``serve deploy``.

Import Ray Serve as ``from ray import serve as ray_serve`` so it never shadows this
package. The modules that parse and check requests (``config``, ``errors``,
``protocols.*_models``, ``url_fetch``) import neither Ray nor vLLM.
"""

__all__: list[str] = []
