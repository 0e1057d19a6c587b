"""The ViT bridge (issue 17): transformers' ViTForImageClassification from a small config with
random weights, converted to canonical parameters, gives the logits of torch_impl and the
reference to <= 1e-4 relative in float32; both directions round-trip exactly; variants the spec
does not have are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from formal_transformers.errors import ConfigError  # noqa: E402
from reference_numpy.vision import vit_classifier as ref_vit  # noqa: E402
from torch_impl.interop.hf_vit import canonical_to_vit, vit_to_canonical  # noqa: E402
from torch_impl.vision import ViTClassifier  # noqa: E402


def _hf(**overrides):
    config = transformers.ViTConfig(**({"image_size": 12, "patch_size": 4, "num_channels": 3,
                                        "hidden_size": 16, "num_hidden_layers": 2,
                                        "num_attention_heads": 4, "intermediate_size": 32,
                                        "num_labels": 5, "hidden_dropout_prob": 0.0,
                                        "attention_probs_dropout_prob": 0.0} | overrides))
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    with torch.no_grad():  # non-trivial class token, positions, layer norms
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_pytorch_tanh"])
def test_logits_agree_with_transformers_and_the_reference(hidden_act):
    hf = _hf(hidden_act=hidden_act)
    config, params = vit_to_canonical(hf.state_dict(), hf.config)
    images = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(pixel_values=images).logits
        ours = ViTClassifier.from_canonical(config, params)(images)
    scale = float(want.abs().max())
    assert scale > 0.1
    assert float((ours - want).abs().max()) <= 1e-4 * scale
    p_ref = np.stack([ref_vit(img, params, config) for img in images.double().numpy()])
    np.testing.assert_allclose(torch.softmax(want.double(), -1).numpy(), p_ref, atol=1e-5)


def test_both_directions_round_trip_exactly():
    hf = _hf()
    config, params = vit_to_canonical(hf.state_dict(), hf.config)
    hf_config, state = canonical_to_vit(config, params)
    original = hf.state_dict()
    assert set(state) == set(original)
    for k, v in state.items():
        assert torch.equal(v, original[k]), k
    rebuilt = transformers.ViTForImageClassification(hf_config)
    rebuilt.load_state_dict(state)
    _, again = vit_to_canonical(rebuilt.state_dict(), rebuilt.config)
    assert all(np.array_equal(again[k], params[k]) for k in params)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"qkv_bias": False}, "qkv_bias = False"),
    ({"hidden_act": "silu"}, "hidden_act must be one of"),
    ({"image_size": (12, 8)}, "only square sizes"),
])
def test_variants_the_spec_does_not_have_are_refused(overrides, message):
    config = transformers.ViTConfig(image_size=12, patch_size=4, num_channels=3, hidden_size=16,
                                    num_hidden_layers=1, num_attention_heads=4,
                                    intermediate_size=32, num_labels=5)
    for k, v in overrides.items():
        setattr(config, k, v)
    from torch_impl.interop.hf_vit import config_from_vit

    with pytest.raises(ConfigError, match=message):
        config_from_vit(config)


def test_the_canonical_count_is_the_number_of_transformers_parameters():
    from formal_transformers.canonical import parameter_count

    hf = _hf()
    config, _ = vit_to_canonical(hf.state_dict(), hf.config)
    assert parameter_count(config) == sum(p.numel() for p in hf.parameters())
