"""Training losses, their gradients, and the spec's training algorithms (spec: Algorithms
11-13, spec/algorithms/11-ed-training.md, 12-e-training.md, 13-d-training.md).

Every loss is a sum over positions of the cross-entropy ``-log P[y, t]`` of a target token,
computed with ``unembedding_loss`` (the forward of Algorithm 23) on the final representation.
``*_loss_and_grad`` return the loss and its gradient with respect to EVERY canonical parameter
(a dict keyed and ordered like ``formal_transformers.canonical.parameter_shapes``), chained
through the hand-written backward passes of ``reference_numpy.architectures_backward``.
The training algorithms run plain gradient descent, one sequence per step.

Declared variants (spec: "Hyperparameter variants" of Algorithms 11-13): the gradients are
those of the config's own parameters (``canonical.fold_gradients``: a tied W_e gets both
uses, absent biases have none), and ``loss_reduction = "mean"`` divides a sequence's loss, and
so its gradient, by its number of predicted tokens |T| (``reduction_scale``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from formal_transformers.canonical import fold_gradients, full_parameters
from formal_transformers.errors import ConfigError
from formal_transformers.hyperparameters import (
    DTransformerConfig,
    EDTransformerConfig,
    ETransformerConfig,
    ModernDTransformerConfig,
)
from formal_transformers.validation import check_token_id
from reference_numpy.architectures import (
    check_model_parameters,
    check_token_sequence,
    d_transformer,
    e_transformer,
    ed_transformer,
)
from reference_numpy.architectures_backward import (
    d_transformer_backward,
    e_transformer_backward,
    ed_transformer_backward,
)
from reference_numpy.backward import unembedding_backward
from reference_numpy.modern_decoder import modern_d_transformer
from reference_numpy.modern_decoder_backward import modern_d_transformer_backward
from reference_numpy.unembedding import unembedding_loss

Params = Mapping[str, np.ndarray]
Grads = dict[str, np.ndarray]
OnStep = Callable[[int, int, float], None]  # (epoch i, sequence n, loss before the step)


def unembedding_loss_and_grad(X_out: np.ndarray, W_u: np.ndarray,
                              targets: Sequence[tuple[int, int]]
                              ) -> tuple[float, np.ndarray, np.ndarray]:
    """Sum over (t, y) in ``targets`` of -log softmax(W_u X_out[:, t])[y] (Algorithm 23).

    X_out: (d_e, l_x). Returns (loss, dX_out (d_e, l_x), dW_u (N_V, d_e)); columns that are
    no target get zero gradient.
    """
    loss, dX_out, dW_u = 0.0, np.zeros_like(X_out), np.zeros_like(W_u)
    for t, y in targets:
        c_t: dict = {}
        loss += unembedding_loss(X_out[:, t], W_u, y, cache=c_t)
        g = unembedding_backward(1.0, c_t)
        dX_out[:, t] += g["e"]
        dW_u += g["W_u"]
    return loss, dX_out, dW_u


def reduction_scale(config, n_targets: int) -> float:
    """The factor of the summed loss: 1 for ``loss_reduction = "sum"`` (the paper), and
    1 / max(|T|, 1) for "mean", |T| = n_targets the sequence's predicted tokens (a sequence
    with none has loss 0 either way)."""
    return 1.0 if getattr(config, "loss_reduction", "sum") == "sum" else 1.0 / max(n_targets, 1)


def _reduced(config, targets, loss: float, dX_out: np.ndarray, dW_u: np.ndarray
             ) -> tuple[float, np.ndarray, np.ndarray]:
    s = reduction_scale(config, len(targets))
    return s * loss, s * dX_out, s * dW_u


def _with_W_u(config, grads: Grads, dW_u: np.ndarray) -> Grads:
    """The full set's gradients with W_u's, folded onto the config's own parameters."""
    grads["W_u"] = dW_u
    return fold_gradients(config, grads)


def d_loss_and_grad(x, params: Params, config: DTransformerConfig | ModernDTransformerConfig
                    ) -> tuple[float, Grads]:
    """Next-token loss of Algorithm 13 (line 5) and its gradient with respect to theta.

    loss = -sum_{t=0}^{l_x-2} log P[x[t+1], t], P = DTransformer(x | theta); x: (l_x,) ids.
    A ModernDTransformerConfig runs the same loss on Algorithm 65 (``modern_loss_and_grad``).
    """
    if isinstance(config, ModernDTransformerConfig):
        return modern_loss_and_grad(x, params, config)
    params = check_model_parameters(config, params)
    x, cache = check_token_sequence("x", x, config), {}  # Alg 13 L3: l_x = len(x)
    d_transformer(x, params, config, cache)  # Alg 13 L4
    targets = next_token_targets(x)
    loss, dX_out, dW_u = _reduced(config, targets, *unembedding_loss_and_grad(
        cache["X_out"], _W_u(config, params), targets))  # Alg 13 L5
    return loss, _with_W_u(config, d_transformer_backward(dX_out, cache, config), dW_u)


def modern_loss_and_grad(x, params: Params, config: ModernDTransformerConfig
                         ) -> tuple[float, Grads]:
    """Algorithm 13's loss (line 5) on the modern decoder and its gradient by the
    hand-written backward (Algorithm 66): dP[x[t+1], t] = -1 / P[x[t+1], t], so that
    Algorithm 66 line 1 gives dZ = P - onehot(x[t+1]) in column t."""
    params = check_model_parameters(config, params)
    x, cache = check_token_sequence("x", x, config), {}  # Alg 13 L3: l_x = len(x)
    P = modern_d_transformer(x, params, config, cache)  # Alg 13 L4
    loss, dP = 0.0, np.zeros_like(P)
    for t, y in next_token_targets(x):  # Alg 13 L5
        loss -= float(np.log(P[y, t]))
        dP[y, t] -= 1.0 / P[y, t]
    return loss, modern_d_transformer_backward(dP, cache, config)


def ed_loss_and_grad(z, x, params: Params, config: EDTransformerConfig
                     ) -> tuple[float, Grads]:
    """Target next-token loss of Algorithm 11 (line 5) and its gradient with respect to theta.

    loss = -sum_{t=0}^{l_x-2} log P[x[t+1], t], P = EDTransformer(z, x | theta).
    """
    params = check_model_parameters(config, params)
    x, cache = check_token_sequence("x", x, config), {}  # Alg 11 L3: l_x = len(x)
    ed_transformer(z, x, params, config, cache)  # Alg 11 L4
    targets = next_token_targets(x)
    loss, dX_out, dW_u = _reduced(config, targets, *unembedding_loss_and_grad(
        cache["X_out"], _W_u(config, params), targets))  # Alg 11 L5
    return loss, _with_W_u(config, ed_transformer_backward(dX_out, cache, config), dW_u)


def mask_sequence(x: np.ndarray, masked: np.ndarray, mask_token: int) -> np.ndarray:
    """x_tilde[t] = mask_token where masked[t], else x[t] (Algorithm 12, line 4)."""
    return np.where(masked, mask_token, x)


def e_loss_and_grad(x, masked, params: Params, config: ETransformerConfig, mask_token: int
                    ) -> tuple[float, Grads]:
    """Masked-token loss of Algorithm 12 (lines 4-7) and its gradient with respect to theta.

    x: (l_x,) original ids; masked: (l_x,) bool, the positions chosen for masking (m_t = 1).
    loss = -sum_{t in T} log P[x[t], t], P = ETransformer(x_tilde | theta).
    """
    params = check_model_parameters(config, params)
    x = check_token_sequence("x", x, config)
    masked = _check_masked(masked, len(x))
    check_token_id("mask_token", mask_token, config.N_V)
    x_tilde = mask_sequence(x, masked, mask_token)  # Alg 12 L4
    T = [int(t) for t in np.flatnonzero(masked)]  # Alg 12 L5
    cache: dict = {}
    e_transformer(x_tilde, params, config, cache)  # Alg 12 L6
    targets = [(t, int(x[t])) for t in T]
    loss, dX_out, dW_u = _reduced(config, targets, *unembedding_loss_and_grad(
        cache["X_out"], _W_u(config, params), targets))  # Alg 12 L7
    return loss, _with_W_u(config, e_transformer_backward(dX_out, cache, config), dW_u)


def vit_loss_and_grad(I, y: int, params: Params, config) -> tuple[float, Grads]:
    """-log p[y] of the ViT classifier (spec: Algorithm 77) and its gradient with respect to
    theta by the hand-written backward (Algorithm 78): dp = -onehot(y) / p[y]."""
    from reference_numpy.vision import vit_classifier, vit_classifier_backward

    cache: dict = {}
    p = vit_classifier(I, params, config, cache)
    check_token_id("y (the label)", y, config.n_classes)
    dp = np.zeros_like(p)
    dp[y] = -1.0 / p[y]
    return float(-np.log(p[y])), vit_classifier_backward(dp, cache, config)[1]


def next_token_targets(x: np.ndarray) -> list[tuple[int, int]]:
    """(t, x[t+1]) for t = 0..l_x-2: column t of P predicts the next token (Algs 11, 13)."""
    return [(t, int(x[t + 1])) for t in range(len(x) - 1)]


def _W_u(config, params: Params) -> np.ndarray:
    """W_u of the full parameter set (W_e^T under tied_unembedding)."""
    return full_parameters(config, params)["W_u"]


def target_loss(config, X_out: np.ndarray, params: Params, targets: Sequence[tuple[int, int]]
                ) -> float:
    """The loss of ``unembedding_loss_and_grad`` without its gradient (reduced as the
    config's loss_reduction says)."""
    W_u = _W_u(config, params)
    return reduction_scale(config, len(targets)) * float(
        sum(unembedding_loss(X_out[:, t], W_u, y) for t, y in targets))


def d_loss(x, params: Params, config: DTransformerConfig | ModernDTransformerConfig
           ) -> float:
    """The loss of ``d_loss_and_grad`` alone (the same number; one forward, no backward)."""
    params = check_model_parameters(config, params)
    if isinstance(config, ModernDTransformerConfig):
        x = check_token_sequence("x", x, config)
        P = modern_d_transformer(x, params, config)
        return float(-sum(np.log(P[y, t]) for t, y in next_token_targets(x)))
    x, cache = check_token_sequence("x", x, config), {}
    d_transformer(x, params, config, cache)
    return target_loss(config, cache["X_out"], params, next_token_targets(x))


def ed_loss(z, x, params: Params, config: EDTransformerConfig) -> float:
    """The loss of ``ed_loss_and_grad`` alone."""
    params = check_model_parameters(config, params)
    x, cache = check_token_sequence("x", x, config), {}
    ed_transformer(z, x, params, config, cache)
    return target_loss(config, cache["X_out"], params, next_token_targets(x))


def e_loss(x, masked, params: Params, config: ETransformerConfig, mask_token: int) -> float:
    """The loss of ``e_loss_and_grad`` alone."""
    params = check_model_parameters(config, params)
    x, cache = check_token_sequence("x", x, config), {}
    masked = _check_masked(masked, len(x))
    check_token_id("mask_token", mask_token, config.N_V)
    e_transformer(mask_sequence(x, masked, mask_token), params, config, cache)
    return target_loss(config, cache["X_out"], params,
                       [(int(t), int(x[t])) for t in np.flatnonzero(masked)])


def _check_masked(masked, l_x: int) -> np.ndarray:
    arr = np.asarray(masked)
    if arr.shape != (l_x,) or arr.dtype != np.bool_:
        raise ConfigError(f"masked must be a boolean array of shape (l_x,) = ({l_x},), "
                          f"got dtype {arr.dtype} and shape {arr.shape}")
    return arr


# ---------------------------------------------------------------------------------------------
# One gradient-descent step, and the training algorithms


def gradient_step(params: Params, grads: Mapping[str, np.ndarray], eta: float
                  ) -> dict[str, np.ndarray]:
    """theta - eta * grad(theta), entry by entry; a new mapping (the input is not modified)."""
    return {name: params[name] - eta * grads[name] for name in params}


def d_training_step(x, params: Params, config: DTransformerConfig, eta: float
                    ) -> tuple[float, dict[str, np.ndarray]]:
    """Lines 3-6 of Algorithm 13 for one sequence x: (loss before the step, updated theta)."""
    loss, grads = d_loss_and_grad(x, params, config)  # Alg 13 L3-5
    return loss, gradient_step(params, grads, check_learning_rate(eta))  # Alg 13 L6


def ed_training_step(z, x, params: Params, config: EDTransformerConfig, eta: float
                     ) -> tuple[float, dict[str, np.ndarray]]:
    """Lines 3-6 of Algorithm 11 for one pair (z, x): (loss before the step, updated theta)."""
    loss, grads = ed_loss_and_grad(z, x, params, config)  # Alg 11 L3-5
    return loss, gradient_step(params, grads, check_learning_rate(eta))  # Alg 11 L6


def e_training_step(x, masked, params: Params, config: ETransformerConfig, eta: float,
                    mask_token: int) -> tuple[float, dict[str, np.ndarray]]:
    """Lines 4-8 of Algorithm 12 given the masking decisions ``masked`` (l_x,) bool."""
    loss, grads = e_loss_and_grad(x, masked, params, config, mask_token)  # Alg 12 L4-7
    return loss, gradient_step(params, grads, check_learning_rate(eta))  # Alg 12 L8


def d_training(data: Sequence, params: Params, config: DTransformerConfig, eta: float,
               N_epochs: int, on_step: OnStep | None = None) -> dict[str, np.ndarray]:
    """DTraining (spec: Algorithm 13, spec/algorithms/13-d-training.md).

    data: token sequences x_n; params: initial canonical theta (not modified). Returns
    theta_hat. ``on_step(i, n, loss)`` is called after every step, if given.
    """
    data = [check_token_sequence(f"data[{n}]", x_n, config) for n, x_n in _items(data)]
    theta = _start(config, params, eta, N_epochs)
    for i in range(N_epochs):  # Alg 13 L1
        for n in range(len(data)):  # Alg 13 L2
            loss, theta = d_training_step(data[n], theta, config, eta)
            _report(on_step, i, n, loss)
    return theta  # Alg 13 L7


def ed_training(data: Sequence, params: Params, config: EDTransformerConfig, eta: float,
                N_epochs: int, on_step: OnStep | None = None) -> dict[str, np.ndarray]:
    """EDTraining (spec: Algorithm 11, spec/algorithms/11-ed-training.md).

    data: pairs (z_n, x_n) of context and target sequences. Returns theta_hat.
    """
    pairs = [_check_pair(n, pair, config) for n, pair in _items(data)]
    theta = _start(config, params, eta, N_epochs)
    for i in range(N_epochs):  # Alg 11 L1
        for n in range(len(pairs)):  # Alg 11 L2
            z_n, x_n = pairs[n]
            loss, theta = ed_training_step(z_n, x_n, theta, config, eta)
            _report(on_step, i, n, loss)
    return theta  # Alg 11 L7


def e_training(data: Sequence, params: Params, config: ETransformerConfig, eta: float,
               N_epochs: int, p_mask: float, mask_token: int, rng: np.random.Generator,
               on_step: OnStep | None = None) -> dict[str, np.ndarray]:
    """ETraining (spec: Algorithm 12, spec/algorithms/12-e-training.md).

    Masks each position with probability p_mask (coins from ``rng``, drawn anew on every
    visit) and descends the loss of reconstructing the masked tokens. Returns theta_hat.
    """
    data = [check_token_sequence(f"data[{n}]", x_n, config) for n, x_n in _items(data)]
    theta = _start(config, params, eta, N_epochs)
    _check_masking(p_mask, mask_token, rng, config)
    for i in range(N_epochs):  # Alg 12 L1
        for n in range(len(data)):  # Alg 12 L2
            l_x = len(data[n])  # Alg 12 L3
            masked = rng.random(l_x) < p_mask  # Alg 12 L4: m_t ~ Bernoulli(p_mask)
            loss, theta = e_training_step(data[n], masked, theta, config, eta, mask_token)
            _report(on_step, i, n, loss)
    return theta  # Alg 12 L9


# ---------------------------------------------------------------------------------------------
# Checks of the training hyperparameters


def check_learning_rate(eta: object) -> float:
    """eta: a finite real number > 0 (ConfigError otherwise)."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.integer, np.floating)) \
            or not math.isfinite(eta) or eta <= 0:
        raise ConfigError(f"eta (learning rate) must be a finite number > 0, got {eta!r}")
    return float(eta)


def _items(data: Sequence) -> list[tuple[int, object]]:
    if isinstance(data, (str, bytes)) or not isinstance(data, (Sequence, np.ndarray)):
        raise ConfigError(f"data must be a list of training examples, got {type(data).__name__}")
    if len(data) == 0:
        raise ConfigError("data must hold at least one training example, got an empty list")
    return list(enumerate(data))


def _check_pair(n: int, pair: object, config: EDTransformerConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(f"data[{n}] must be a pair (z, x) of token sequences, got "
                          f"{type(pair).__name__}")
    return (check_token_sequence(f"data[{n}].z", pair[0], config),
            check_token_sequence(f"data[{n}].x", pair[1], config))


def _start(config, params: Params, eta: float, N_epochs: int) -> dict[str, np.ndarray]:
    """Check theta, eta and N_epochs; return a float64 copy of theta to update."""
    check_learning_rate(eta)
    if isinstance(N_epochs, bool) or not isinstance(N_epochs, (int, np.integer)) or N_epochs < 1:
        raise ConfigError(f"N_epochs must be a positive integer, got {N_epochs!r}")
    return {name: value.copy() for name, value in check_model_parameters(config, params).items()}


def _check_masking(p_mask: object, mask_token: object, rng: object,
                   config: ETransformerConfig) -> None:
    if isinstance(p_mask, bool) or not isinstance(p_mask, (int, float, np.floating)) \
            or not 0 < p_mask < 1:
        raise ConfigError(f"p_mask must be a probability in the open interval (0, 1), "
                          f"got {p_mask!r}")
    check_token_id("mask_token", mask_token, config.N_V)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator (e.g. "
                          f"numpy.random.default_rng(seed)), got {type(rng).__name__}")


def _report(on_step: OnStep | None, i: int, n: int, loss: float) -> None:
    if on_step is not None:
        on_step(i, n, loss)
