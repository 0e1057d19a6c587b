"""The JAX example (conformance/examples/jax_transformer.py, plain jax.numpy on CPU jaxlib)
run by the suite: forward agreement of attention, multi-head attention, layer norm and the D
transformer, and their gradients through jax.vjp / jax.grad against the reference's
hand-written backward."""

from __future__ import annotations

import pytest

pytest.importorskip("jax")

from conformance.runner import run  # noqa: E402


def test_the_jax_example_agrees_with_the_reference():
    from conformance.examples.jax_transformer import JaxTransformer

    results = [r for r in run(JaxTransformer(), "quick", only=["reference"])
               if r.algorithm in JaxTransformer.algorithms]
    bad = [(r.algorithm, r.property, r.reason) for r in results
           if r.status in ("failed", "error")]
    assert not bad, bad
    passed = {(r.algorithm, r.property) for r in results if r.status == "passed"}
    for alg in ("attention", "mhattention", "layer_norm", "d_transformer"):
        assert (alg, "reference.forward_agreement") in passed
    for alg in ("attention_backward", "mhattention_backward", "layer_norm_backward",
                "d_transformer"):
        assert (alg, "reference.gradient_agreement") in passed, alg


def test_a_jax_mutant_is_caught():
    import jax
    import jax.numpy as jnp

    from conformance.examples import jax_transformer as jt

    class LayerNormWithoutCentering(jt.JaxTransformer):
        """Divides by the root mean square instead of the standard deviation."""

        def layer_norm(self, X, params, eps):
            rms = jnp.sqrt((jnp.asarray(X) ** 2).mean(-1, keepdims=True) + eps)
            return jax.device_get(X / rms * params["gamma"] + params["beta"])

    results = run(LayerNormWithoutCentering(), "quick", only=["layer_norm"], shrink=False)
    assert any(r.algorithm == "layer_norm" and r.status == "failed" for r in results)
