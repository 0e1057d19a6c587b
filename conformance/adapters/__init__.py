"""Adapters bundled with the suite: the torch implementation (the default target of
``formal-transformers verify``) and reference_numpy (``--impl reference``)."""
