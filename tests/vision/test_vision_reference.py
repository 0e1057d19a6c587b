"""The vision path's reference (spec: Algorithms 75-78): the literal patch loop equals its
vectorised form and a strided convolution, it is inverted exactly, the hand-written backward
matches central differences and torch autograd, torch_impl agrees, and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.canonical import random_parameters
from formal_transformers.errors import ConfigError, SpecShapeError
from formal_transformers.hyperparameters import ViTConfig
from reference_numpy import vision
from torch_impl.vision import ViTClassifier, vit_classifier_backward

CONFIG = ViTConfig(C=2, height=6, width=9, patch_size=3, n_classes=4, d_e=6, d_mlp=8, L=2, H=2)


@pytest.mark.parametrize(("C", "h", "w", "P"), [(3, 8, 12, 4), (1, 5, 5, 1), (2, 6, 6, 6),
                                                 (3, 6, 9, 3)])
def test_the_loop_its_vectorised_form_the_inverse_and_the_convolution_agree(C, h, w, P):
    rng = np.random.default_rng(0)
    I = rng.standard_normal((C, h, w))
    X_p = vision.patch_extraction(I, P)
    assert X_p.shape == (C * P * P, (h // P) * (w // P))
    np.testing.assert_array_equal(vision.patch_extraction_vectorised(I, P), X_p)
    np.testing.assert_array_equal(vision.patch_reassembly(X_p, C, h, w, P), I)
    K = rng.standard_normal((5, C, P, P))
    conv = torch.nn.functional.conv2d(torch.from_numpy(I)[None], torch.from_numpy(K), stride=P)
    np.testing.assert_allclose(K.reshape(5, -1) @ X_p, conv[0].flatten(1).numpy(), atol=1e-12)


def test_the_vectorised_form_allocates_one_image_sized_copy():
    """The view and the axis permutation share the image's memory; the reshape copies once."""
    I = np.arange(2 * 4 * 6, dtype=np.float64).reshape(2, 4, 6)
    grid = I.reshape(2, 2, 2, 3, 2)
    assert np.shares_memory(grid, I) and np.shares_memory(grid.transpose(1, 3, 0, 2, 4), I)
    X_p = vision.patch_extraction_vectorised(I, 2)
    assert not np.shares_memory(X_p, I) and X_p.base.nbytes == I.nbytes


def test_the_hand_written_backward_matches_central_differences_and_autograd():
    rng = np.random.default_rng(1)
    params = random_parameters(CONFIG, rng, 0.5)
    I = rng.standard_normal((CONFIG.C, CONFIG.height, CONFIG.width))
    dp = rng.standard_normal(CONFIG.n_classes)
    cache: dict = {}
    vision.vit_classifier(I, params, CONFIG, cache)
    dI, grads = vision.vit_classifier_backward(dp, cache, CONFIG)

    def loss(p, img):
        return float(vision.vit_classifier(img, p, CONFIG) @ dp)

    h = 1e-6
    for name in params:
        V = rng.standard_normal(params[name].shape)
        plus = dict(params) | {name: params[name] + h * V}
        minus = dict(params) | {name: params[name] - h * V}
        numeric = (loss(plus, I) - loss(minus, I)) / (2 * h)
        assert abs(numeric - np.sum(grads[name] * V)) < 1e-7 * max(1.0, abs(numeric)), name
    V = rng.standard_normal(I.shape)
    numeric = (loss(params, I + h * V) - loss(params, I - h * V)) / (2 * h)
    assert abs(numeric - np.sum(dI * V)) < 1e-7 * max(1.0, abs(numeric))

    auto = vit_classifier_backward(torch.from_numpy(dp)[None], torch.from_numpy(I)[None],
                                   params, CONFIG)
    np.testing.assert_allclose(auto["I"][0].numpy(), dI, atol=1e-12)
    for name in params:
        np.testing.assert_allclose(auto[name].numpy(), grads[name], atol=1e-12, err_msg=name)


@pytest.mark.parametrize("positions", ["learned", "none"])
def test_torch_agrees_with_the_reference_and_round_trips_the_parameters(positions):
    config = ViTConfig(C=2, height=6, width=9, patch_size=3, n_classes=4, d_e=6, d_mlp=8, L=2,
                       H=2, positions=positions)
    rng = np.random.default_rng(2)
    params = random_parameters(config, rng, 0.7)
    images = rng.standard_normal((3, 2, 6, 9))
    model = ViTClassifier.from_canonical(config, params)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(images)), -1).numpy()
    for b in range(3):
        np.testing.assert_allclose(p[b], vision.vit_classifier(images[b], params, config),
                                   atol=1e-12)
    assert all(np.array_equal(v, params[k]) for k, v in model.to_canonical().items())
    assert ("W_p" in params) == (positions == "learned")


def test_bad_input_is_refused_with_a_typed_error_naming_the_expectation():
    with pytest.raises(ConfigError, match="patch_size P = 4 must divide the image height h = 6"):
        vision.patch_extraction(np.zeros((1, 6, 8)), 4)
    with pytest.raises(ConfigError, match="patch_size must be a positive integer, got 0"):
        vision.patch_extraction(np.zeros((1, 6, 8)), 0)
    with pytest.raises(ConfigError, match="must divide the image height 6 and width 9"):
        ViTConfig(C=1, height=6, width=9, patch_size=2, n_classes=2, d_e=2, d_mlp=2, L=1, H=1)
    with pytest.raises(ConfigError, match="positions must be one of"):
        ViTConfig(C=1, height=6, width=6, patch_size=2, n_classes=2, d_e=2, d_mlp=2, L=1, H=1,
                  positions="sinusoidal")
    params = random_parameters(CONFIG, np.random.default_rng(0), 0.5)
    with pytest.raises(SpecShapeError):
        vision.vit_classifier(np.zeros((3, 6, 9)), params, CONFIG)  # 3 channels, not 2
    model = ViTClassifier.from_canonical(CONFIG, params)
    with pytest.raises(SpecShapeError):
        model(torch.zeros(1, 2, 9, 6, dtype=torch.float64))  # height and width swapped


def test_the_class_token_attention_rows_are_distributions_matching_the_reference():
    """torch_impl.vision.class_token_attention (the picture of `classify --plot`) gives the
    attention weights Alg 4 L6 computes for query column 0, in every layer and head."""
    from reference_numpy.attention import softmax_columns
    from reference_numpy.layer_norm import layer_norm
    from torch_impl.vision import class_token_attention

    rng = np.random.default_rng(4)
    params = random_parameters(CONFIG, rng, 0.7)
    I = rng.standard_normal((CONFIG.C, CONFIG.height, CONFIG.width))
    model = ViTClassifier.from_canonical(CONFIG, params)
    weights = class_token_attention(model, torch.from_numpy(I)[None])[0].numpy()  # (L, H, T)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-12)
    cache: dict = {}
    vision.vit_classifier(I, params, CONFIG, cache)
    X = vision.patch_embedding(I, params["W_pe"], params["b_pe"], params["e_cls"],
                               params["W_p"], CONFIG.patch_size)
    p = "layers.0"
    Xt = np.stack([layer_norm(X[:, t], params[f"{p}.ln1.gamma"], params[f"{p}.ln1.beta"],
                              CONFIG.layer_norm_eps) for t in range(X.shape[1])], axis=1)
    for h in range(CONFIG.H):
        q = params[f"{p}.mha.W_q"][h] @ Xt + params[f"{p}.mha.b_q"][h][:, None]
        k = params[f"{p}.mha.W_k"][h] @ Xt + params[f"{p}.mha.b_k"][h][:, None]
        A = softmax_columns(k.T @ q / np.sqrt(q.shape[0]))  # (T keys, T queries)
        np.testing.assert_allclose(weights[0, h], A[:, 0], atol=1e-12)
