"""An order-k Markov chain over a small alphabet, with its exact entropy rate.

The chain is the decoder's synthetic source (issue 8): its entropy rate is the floor for the
validation loss of any next-token predictor, so training can be measured by its distance to it.

Conventions: the alphabet is [S] = {0, ..., S-1}; a *state* is the context of the last k
symbols (x[t-k], ..., x[t-1]), numbered in base S, s = sum_i x[t-k+i] S^(k-1-i). The table
``T`` in R^{S^k x S} holds T[s, v] = P(x[t] = v | state s). A sequence starts with its first k
symbols drawn from the stationary distribution ``pi`` of the states, so the process is
stationary: for every t >= k the expected next-token loss of the true chain is exactly the
entropy rate H = sum_s pi[s] * entropy(T[s]). Positions t < k see a shorter context and have
a larger floor, given exactly by ``conditional_entropies``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formal_transformers.errors import ConfigError, SpecShapeError, TokenRangeError


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis``, with 0 log 0 = 0."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=axis)


def stationary_distribution(P: np.ndarray) -> np.ndarray:
    """The unique pi >= 0 with pi P = pi and sum(pi) = 1, for an irreducible stochastic P.

    Solved exactly (up to float64 rounding) as the linear system (P^T - I) pi = 0 with one row
    replaced by the normalisation 1^T pi = 1.
    """
    n = P.shape[0]
    A = P.T - np.eye(n)
    A[-1, :] = 1.0
    b = np.zeros(n)
    b[-1] = 1.0
    pi = np.linalg.solve(A, b)
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


@dataclass(frozen=True)
class MarkovChain:
    """A seeded order-k chain over S symbols; rows of T are drawn from Dirichlet(alpha)."""

    S: int = 8
    k: int = 2
    seed: int = 0
    alpha: float = 0.5
    T: np.ndarray = field(init=False, repr=False, compare=False)
    pi: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("S", "k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MarkovChain.{name} must be a positive integer, got {value!r}")
        if self.S < 2 or self.S**self.k > 4096:
            raise ConfigError(f"MarkovChain needs 2 <= S and S^k <= 4096 states, "
                              f"got S={self.S}, k={self.k}")
        if not self.alpha > 0:
            raise ConfigError(f"MarkovChain.alpha must be > 0, got {self.alpha!r}")
        rng = np.random.default_rng([self.seed, 0x4D41524B])
        T = rng.dirichlet(np.full(self.S, float(self.alpha)), size=self.S**self.k)
        T = np.maximum(T, 1e-12)  # keep every transition possible: the chain is irreducible
        T /= T.sum(axis=1, keepdims=True)
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "pi", stationary_distribution(self.state_transition_matrix()))

    @property
    def n_states(self) -> int:
        return self.S**self.k

    def state_transition_matrix(self) -> np.ndarray:
        """P[s, s'] = P(next state s' | state s), shape (S^k, S^k): s' = (s S + v) mod S^k."""
        n, S = self.n_states, self.S
        P = np.zeros((n, n))
        for s in range(n):
            P[s, (s * S + np.arange(S)) % n] += self.T[s]
        return P

    def state_symbols(self) -> np.ndarray:
        """The k symbols of every state, shape (S^k, k), oldest first."""
        s = np.arange(self.n_states)
        return np.stack([(s // self.S ** (self.k - 1 - i)) % self.S for i in range(self.k)], 1)

    def entropy_rate(self) -> float:
        """H = sum_s pi[s] entropy(T[s]) in nats/token: the floor of the loss at t >= k."""
        return float(self.pi @ _entropy(self.T))

    def conditional_entropies(self, length: int) -> np.ndarray:
        """H(x[t] | x[0:t]) for t = 0 .. length-1 (nats), exactly, under the stationary start.

        For t < k it is H(x[0:t+1]) - H(x[0:t]) with the marginals of pi; for t >= k it is the
        entropy rate.
        """
        out = np.full(length, self.entropy_rate())
        joint = self.pi.reshape((self.S,) * self.k)  # pi over (x[0], ..., x[k-1])
        prev = 0.0
        for t in range(min(self.k, length)):
            marginal = joint.sum(axis=tuple(range(t + 1, self.k)))
            h = float(_entropy(marginal.ravel()))
            out[t] = h - prev
            prev = h
        return out

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        """``batch`` independent stationary sequences, shape (batch, length), dtype int64."""
        x = np.empty((batch, length), dtype=np.int64)
        states = rng.choice(self.n_states, size=batch, p=self.pi)
        x[:, : min(self.k, length)] = self.state_symbols()[states][:, :length]
        cum = np.cumsum(self.T, axis=1)
        for t in range(self.k, length):
            u = rng.random(batch)
            v = np.minimum((u[:, None] > cum[states]).sum(axis=1), self.S - 1)
            x[:, t] = v
            states = (states * self.S + v) % self.n_states
        return x

    def next_token_probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(x[t] = v | x[0:t]) under the chain for every t, shape (batch, length, S).

        Exact at every position, t < k included (there from the marginals of pi).
        """
        x = self._check_tokens(x)
        B, l = x.shape
        probs = np.empty((B, l, self.S))
        joint = self.pi.reshape((self.S,) * self.k)
        for t in range(min(self.k, l)):
            marginal = joint.sum(axis=tuple(range(t + 1, self.k)))  # (S,)*(t+1)
            cond = np.broadcast_to(marginal[tuple(x[:, :t].T)], (B, self.S))  # P(x[0:t], v)
            probs[:, t] = cond / cond.sum(axis=1, keepdims=True)
        states = self.state_index(x[:, : self.k]) if l > self.k else None
        for t in range(self.k, l):
            probs[:, t] = self.T[states]
            states = (states * self.S + x[:, t]) % self.n_states
        return probs

    def state_index(self, context: np.ndarray) -> np.ndarray:
        """Base-S number of the last k symbols of ``context`` (batch, >= k) -> (batch,)."""
        s = np.zeros(context.shape[0], dtype=np.int64)
        for i in range(self.k):
            s = s * self.S + context[:, context.shape[1] - self.k + i]
        return s

    def _check_tokens(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2:
            raise SpecShapeError(f"x must have shape (batch, length), got {x.shape}")
        if x.size and (x.min() < 0 or x.max() >= self.S):
            raise TokenRangeError(f"x must hold symbols in [0, {self.S - 1}], "
                                  f"found {int(x.min()) if x.min() < 0 else int(x.max())}")
        return x.astype(np.int64)
