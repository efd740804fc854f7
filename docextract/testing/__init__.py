"""Test and benchmark support: the random-weight model builder (:mod:`.tiny_model`), with what each model
family needs (:mod:`.families`), the locally trained tokenizer (:mod:`.tokenizer`) and the random weights
(:mod:`.weights`)."""
