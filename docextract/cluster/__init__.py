"""Ray: the one resource request of an engine for both doors (:mod:`.placement`) and joining
or starting a Ray cluster (:mod:`.runtime`). Ray is imported inside functions."""
