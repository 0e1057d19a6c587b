"""Example adapters: implementations we did not write, put in front of the conformance suite.

They ship with the package, so the walk-through's commands work from an installed wheel:

    formal-transformers verify \
        --impl conformance.examples.torch_multihead_attention:TorchMultiheadAttention
    formal-transformers verify --impl conformance.examples.torch_encoder_layer:TorchEncoder

The walk-through itself is examples/README.md in the repository (the site's "Test your
implementation" page).
"""
