"""Example adapters: implementations we did not write, put in front of the conformance suite
(see examples/README.md)."""
