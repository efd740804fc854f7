"""Models: where a model's files come from (:mod:`.source`) and what each model family needs
from the engine (:mod:`.families`, a registry)."""
