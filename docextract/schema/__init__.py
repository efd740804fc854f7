"""JSON Schemas: load-time checks per grammar backend (:mod:`.check`) and the engine schema
sent to vLLM with its mapping back (:mod:`.transform`), over one ``$ref`` resolver (:mod:`.refs`).
Pure Python: no vllm, torch or ray import."""
