"""One FastAPI router per protocol, each beside its request and response models.

==========================  ====================================  =============================
router                      routes                                models
==========================  ====================================  =============================
:mod:`.native`              ``POST /v1/extract``                  :mod:`.native_models`
:mod:`.openai`              ``POST /v1/chat/completions``         :mod:`.openai_models`
:mod:`.completions`         ``POST /v1/completions``              :mod:`.completions_models`
:mod:`.tgi`                 ``POST /``, ``/generate``,            :mod:`.tgi_models`
                            ``/generate_stream``, ``GET /info``
:mod:`.service`             ``/healthz``, ``/metrics``,           (in :mod:`.native_models`)
                            ``/v1/models``, ``/v1/tasks``
:mod:`.playground`          ``GET /playground`` and its assets    (static files in ``serve/playground/``)
==========================  ====================================  =============================

A router translates and nothing else: it reads its protocol's request, turns it into the
one internal request (:class:`~docextract.requests.ExtractionRequest`, or a document for
``/v1/extract``) through :class:`serve.ingress.Ingress`, and writes the engine's
:class:`~docextract.results.ExtractionResult` back in its protocol's shape. No router
builds prompts, validates output or reads vLLM outputs: the engine does, once.
"""
