"""The ``docextract`` console script (:mod:`.main`) and the one generator that turns config
models into command-line options (:mod:`.options`), used by ``serve`` and ``batch`` too."""
