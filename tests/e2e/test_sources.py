"""The synthetic sources and their exact limits (issue 8; formal_transformers/sources).

The limits are only worth measuring against if they are right: each is checked against an
independent computation (brute-force enumeration, Monte Carlo on the true chain).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from formal_transformers.errors import SourceError, TokenRangeError
from formal_transformers.sources import make_source, resolve_arch, source_from_dict
from formal_transformers.sources.markov import MarkovChain
from formal_transformers.sources.masked import bayes_scores, posterior_marginals
from formal_transformers.sources.seq2seq import Seq2SeqTask
from formal_transformers.sources.text import CharTokenizer, TextLM


def _log_probs_of_chain(chain: MarkovChain):
    """The true chain as a 'model' in the decoder's convention: row t predicts x[t+1]."""
    def log_probs(batch):
        p = chain.next_token_probabilities(batch.x)[:, 1:]
        pad = np.full((len(batch), 1, chain.S), 1.0 / chain.S)
        return np.log(np.concatenate([p, pad], axis=1))
    return log_probs


def test_stationary_distribution_is_invariant_under_the_chain():
    chain = MarkovChain(S=5, k=2, seed=3)
    P = chain.state_transition_matrix()
    assert np.allclose(P.sum(axis=1), 1.0)
    assert np.isclose(chain.pi.sum(), 1.0) and (chain.pi > 0).all()
    np.testing.assert_allclose(chain.pi @ P, chain.pi, atol=1e-13)


def test_entropy_rate_is_the_mean_loss_of_the_true_chain_at_positions_from_k():
    """H = sum_s pi_s H(T_s) equals the Monte Carlo mean of -log P(x_t | x_{<t}), t >= k."""
    chain = MarkovChain(S=8, k=2, seed=0)
    x = chain.sample(np.random.default_rng(7), 3000, 40)
    p = chain.next_token_probabilities(x)
    nll = -np.log(np.take_along_axis(p, x[..., None], axis=2)[..., 0])
    per_seq = nll[:, chain.k:].mean(axis=1)
    se = per_seq.std(ddof=1) / np.sqrt(len(per_seq))
    assert abs(per_seq.mean() - chain.entropy_rate()) < 4 * se
    # the first positions have larger, exactly known floors
    H_t = chain.conditional_entropies(40)
    assert H_t[0] > H_t[1] > H_t[2] == pytest.approx(chain.entropy_rate())
    for t in range(chain.k):
        col = nll[:, t]
        assert abs(col.mean() - H_t[t]) < 4 * col.std() / np.sqrt(len(col))


def test_order2_chain_entropy_rate_is_far_below_what_shorter_contexts_allow():
    """The decoder's target is meaningful: ignoring x[t-2] would cost > 0.4 nats/token."""
    chain = MarkovChain(S=8, k=2, seed=0)
    H_t = chain.conditional_entropies(3)
    assert H_t[1] - chain.entropy_rate() > 0.4


def test_sampled_sequences_follow_the_transition_table():
    chain = MarkovChain(S=3, k=1, seed=2)
    x = chain.sample(np.random.default_rng(0), 4000, 30)
    counts = np.zeros((3, 3))
    np.add.at(counts, (x[:, :-1].ravel(), x[:, 1:].ravel()), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(empirical, chain.T, atol=0.02)
    np.testing.assert_allclose(np.bincount(x[:, 0], minlength=3) / 4000, chain.pi, atol=0.03)


@pytest.mark.parametrize(("S", "k", "length"), [(3, 1, 7), (3, 2, 6), (2, 3, 7)])
def test_masked_posterior_equals_brute_force_enumeration(S, k, length):
    """Forward-backward gives P(x_t | unmasked tokens) exactly, other masks marginalised."""
    chain = MarkovChain(S=S, k=k, seed=5)
    rng = np.random.default_rng(1)
    x = chain.sample(rng, 12, length)
    masked = rng.random(x.shape) < 0.45
    q = posterior_marginals(chain, x, masked)
    sym = {tuple(s): i for i, s in enumerate(chain.state_symbols())}
    for b in range(len(x)):
        post = np.zeros((length, S))
        for seq in itertools.product(range(S), repeat=length):
            seq = np.array(seq)
            if np.any(seq[~masked[b]] != x[b][~masked[b]]):
                continue
            p = chain.pi[sym[tuple(seq[:k])]]
            for t in range(k, length):
                p *= chain.T[sym[tuple(seq[t - k:t])], seq[t]]
            post[np.arange(length), seq] += p
        post /= post.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(q[b], post, atol=1e-12)


def test_bayes_accuracy_bounds_every_predictor_and_regret_is_its_gap():
    chain = MarkovChain(S=4, k=1, seed=9)
    rng = np.random.default_rng(2)
    x = chain.sample(rng, 500, 12)
    masked = rng.random(x.shape) < 0.2
    q = posterior_marginals(chain, x, masked)
    bayes = bayes_scores(q, x, masked)
    for predictions in (np.zeros_like(x), rng.integers(0, 4, x.shape), q.argmax(axis=2)):
        s = bayes_scores(q, x, masked, predictions=predictions)
        assert s["model_accuracy_expected"] <= bayes["bayes_accuracy"] + 1e-12
        assert s["regret"] == pytest.approx(bayes["bayes_accuracy"] - s["model_accuracy_expected"])
    assert bayes_scores(q, x, masked, predictions=q.argmax(axis=2))["regret"] == 0.0


def test_markov_source_scores_the_true_chain_at_its_entropy_rate():
    source = make_source("markov", n_validation=1024, length=32)
    metrics = source.evaluate(_log_probs_of_chain(source.chain))
    H = source.limits()[0].value
    assert metrics["kl_excess"] == pytest.approx(0.0, abs=1e-12)
    assert abs(metrics["val_loss"] - H) < 4 * metrics["val_loss_stderr"]
    assert metrics["val_tokens"] == 1024 * (32 - source.chain.k)


def test_masked_source_scores_the_exact_posterior_at_zero_regret():
    source = make_source("masked-markov", k=1, length=12, n_validation=256)

    def posterior_model(batch):
        q = posterior_marginals(source.chain, batch.targets, batch.masked)
        q = np.concatenate([q, np.zeros(q.shape[:2] + (1,))], axis=2)  # the mask token
        return np.log(np.maximum(q, 1e-300))

    metrics = source.evaluate(posterior_model)
    assert metrics["regret"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["val_accuracy"] == metrics["bayes_accuracy_empirical"]
    assert metrics["val_loss"] == pytest.approx(metrics["bayes_loss_empirical"])


@pytest.mark.parametrize("task", ["reverse", "copy"])
def test_seq2seq_targets_are_framed_by_bos_and_eos(task):
    t = Seq2SeqTask(task, S=5, max_len=6)
    z, x = t.sample(np.random.default_rng(0), 4, 5)
    assert z.shape == (4, 5) and x.shape == (4, 7)
    assert (x[:, 0] == t.bos).all() and (x[:, -1] == t.eos).all()
    np.testing.assert_array_equal(x[:, 1:-1], z[:, ::-1] if task == "reverse" else z)
    assert t.N_V == 7 and t.l_max == 8


def test_seq2seq_exact_match_counts_whole_sequences():
    source = make_source("reverse", S=4, max_len=5, n_validation_per_length=8)

    def oracle(batch, wrong_row=None):
        lp = np.full(batch.x.shape + (source.N_V,), -20.0)
        rows, cols = np.meshgrid(np.arange(len(batch)), np.arange(batch.x.shape[1] - 1),
                                 indexing="ij")
        lp[rows, cols, batch.x[:, 1:]] = 0.0
        if wrong_row is not None:  # one wrong first token in one row of every length
            lp[wrong_row, 0, batch.x[wrong_row, 1]] = -20.0
            lp[wrong_row, 0, (batch.x[wrong_row, 1] + 1) % source.task.S] = 0.0
        return lp

    assert source.evaluate(oracle)["val_exact_match"] == 1.0
    flawed = source.evaluate(lambda b: oracle(b, wrong_row=0))
    assert flawed["val_exact_match"] == pytest.approx(1 - 5 / 40)
    assert source.limits()[1].value == 1.0


def test_batches_depend_only_on_seed_and_step_and_validation_is_held_out():
    a, b = make_source("markov", seed=4), make_source("markov", seed=4)
    np.testing.assert_array_equal(a.batch(17, 8).x, b.batch(17, 8).x)
    assert not np.array_equal(a.batch(17, 8).x, a.batch(18, 8).x)
    train_rows = {tuple(r) for s in range(20) for r in a.batch(s, 32).x}
    val_rows = {tuple(r) for r in a.validation_batch().x}
    assert not train_rows & val_rows


def test_source_round_trips_through_its_dict():
    for name in ("markov", "masked-markov", "reverse", "copy"):
        s = make_source(name, seed=2)
        assert source_from_dict(s.to_dict()).to_dict() == s.to_dict()


def test_unknown_source_and_mismatched_architecture_are_source_errors():
    with pytest.raises(SourceError, match="unknown source 'zipf'.*known sources"):
        make_source("zipf")
    with pytest.raises(SourceError, match="'reverse' trains the encoder-decoder, not --arch"):
        resolve_arch("reverse", None, "decoder")
    with pytest.raises(SourceError, match="exactly one of --source"):
        resolve_arch(None, None, None)
    with pytest.raises(SourceError, match="--text trains one of"):
        resolve_arch(None, "f.txt", "encoder-decoder")


def test_text_file_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(SourceError, match="empty.txt.*holds 0 characters"):
        make_source(text=str(empty))
    with pytest.raises(SourceError, match="does not exist"):
        make_source(text=str(tmp_path / "missing.txt"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SourceError, match="cannot read .* as UTF-8"):
        make_source(text=str(binary))


def test_character_tokenizer_round_trips_and_rejects_unknown_characters(tmp_path):
    text = "hello, world\n"
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert len(set(text)) == tok.N_V
    with pytest.raises(TokenRangeError, match="outside the tokenizer's alphabet.*'z'"):
        tok.encode("hz")
    f = tmp_path / "t.txt"
    f.write_text(text * 40)
    src = make_source(text=str(f), length=16)
    assert isinstance(src, TextLM) and src.N_V == tok.N_V
    train, val = src.corpus().split()
    assert val is not None and len(train) + len(val) == len(text) * 40
    assert src.batch(0, 3).x.shape == (3, 16)


def test_text_source_refuses_a_changed_file(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcabcabd" * 10)
    stored = make_source(text=str(f), length=8).to_dict()
    f.write_text("abcabcabc" * 10)
    with pytest.raises(SourceError, match="changed since the run started"):
        source_from_dict(stored).batch(0, 2)
