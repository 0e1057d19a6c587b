"""Masked-token recovery on a Markov chain, with the exact Bayes-optimal posterior.

The encoder's source (spec: Algorithm 12, ETraining): a stationary sequence x of the chain,
each position masked independently with probability p_mask and replaced by ``mask_token``
(= S, one past the chain's alphabet). The loss sums -log P[x[t], t] over masked positions.

The Bayes-optimal predictor of a masked x[t] is its posterior given every unmasked token, the
other masked positions marginalised out. It is computed exactly by forward-backward over the
states of the order-k chain (the last k symbols): observed positions constrain the state,
masked ones do not. From the posterior q_t:

- Bayes accuracy at a masked position is E[[argmax q_t = x[t]] | observed] = max_v q_t[v];
- Bayes loss is E[-log q_t[x[t]] | observed] = entropy(q_t);
- a model predicting v* scores E[[v* = x[t]] | observed] = q_t[v*].

These conditional expectations are exact per example; averaging them over held-out examples
estimates the expected values with far less noise than counting hits (Rao-Blackwellisation).
"""

from __future__ import annotations

import numpy as np

from formal_transformers.sources.markov import MarkovChain


def emission_indicators(x: np.ndarray, masked: np.ndarray, S: int) -> np.ndarray:
    """e[b, t, v] = 1 if position t may hold symbol v (masked, or observed as v); (B, l, S)."""
    e = (x[:, :, None] == np.arange(S)).astype(np.float64)
    e[masked] = 1.0
    return e


def posterior_marginals(chain: MarkovChain, x: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """q[b, t, v] = P(x[t] = v | the unmasked tokens of sequence b), shape (B, l, S).

    ``x`` (B, l) holds the true symbols (ignored where ``masked``); requires l >= k.
    Forward-backward over the states s_t = (x[t-k+1], ..., x[t]) for t = k-1 .. l-1, with
    each step normalised to avoid underflow.
    """
    B, l = x.shape
    S, k, n = chain.S, chain.k, chain.n_states
    e = emission_indicators(x, masked, S)
    sym = chain.state_symbols()  # (n, k)
    P = chain.state_transition_matrix()  # (n, n)
    last = sym[:, -1]
    # Initial state s_{k-1} = (x[0], ..., x[k-1]): prior pi times every constraint on it.
    init = np.ones((B, n))
    for i in range(k):
        init *= e[:, i, sym[:, i]]
    alphas = np.empty((l - k + 1, B, n))
    a = chain.pi * init
    alphas[0] = a / a.sum(axis=1, keepdims=True)
    for j, t in enumerate(range(k, l), start=1):
        a = (alphas[j - 1] @ P) * e[:, t, last]
        alphas[j] = a / a.sum(axis=1, keepdims=True)
    betas = np.ones_like(alphas)
    for j in range(l - k - 1, -1, -1):
        t = j + k  # position of the symbol entering between states j and j+1
        b = (betas[j + 1] * e[:, t, last]) @ P.T
        betas[j] = b / b.sum(axis=1, keepdims=True)
    gamma = alphas * betas
    gamma /= gamma.sum(axis=2, keepdims=True)  # (l-k+1, B, n): P(s_t | observed)
    q = np.empty((B, l, S))
    onehot_last = np.eye(S)[last]  # (n, S)
    for i in range(k - 1):  # the first k-1 symbols are read from the first state
        q[:, i] = gamma[0] @ np.eye(S)[sym[:, i]]
    q[:, k - 1:] = np.einsum("jbn,nv->bjv", gamma, onehot_last)
    return q


def bayes_scores(q: np.ndarray, x: np.ndarray, masked: np.ndarray,
                 predictions: np.ndarray | None = None) -> dict[str, float]:
    """Exact conditional expectations averaged over the masked positions.

    Returns the Bayes-optimal accuracy (mean of max_v q) and loss (mean entropy of q), the
    empirical Bayes accuracy/loss on the realised tokens, and -- if ``predictions`` (B, l) are
    given -- the model's expected accuracy (mean q[prediction]) and its regret to Bayes.
    """
    qm = q[masked]  # (M, S)
    xm = x[masked]
    out = {
        "n_masked": int(masked.sum()),
        "bayes_accuracy": float(qm.max(axis=1).mean()),
        "bayes_loss": float(-(qm * np.log(np.where(qm > 0, qm, 1.0))).sum(axis=1).mean()),
        "bayes_accuracy_empirical": float((qm.argmax(axis=1) == xm).mean()),
        "bayes_loss_empirical": float(-np.log(qm[np.arange(len(xm)), xm]).mean()),
    }
    if predictions is not None:
        hit = qm[np.arange(len(xm)), predictions[masked]]
        regret = qm.max(axis=1) - hit
        out["model_accuracy_expected"] = float(hit.mean())
        out["regret"] = float(regret.mean())
        out["regret_stderr"] = float(regret.std(ddof=1) / np.sqrt(max(len(regret) - 1, 1)))
    return out
