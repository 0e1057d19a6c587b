"""The synthetic image source (issue 17): deterministic, and its posterior is the exact Bayes
posterior of its generating process -- checked against the Gaussian likelihood of every pixel
written out from scratch, summed over the template's positions."""

from __future__ import annotations

import numpy as np
import pytest

from formal_transformers.errors import SourceError
from formal_transformers.sources import make_source, source_from_dict
from formal_transformers.sources.images import TemplateImages


def brute_force_log_posterior(source: TemplateImages, I: np.ndarray) -> np.ndarray:
    """log p(k | I) from the full Gaussian density of the image given (k, position)."""
    P, g, s2 = source.patch_size, source.grid, source.sigma ** 2
    logs = np.zeros((source.n_classes, g * g))
    for k in range(source.n_classes):
        for q in range(g * g):
            mean = np.zeros_like(I, dtype=np.float64)
            r, c = divmod(q, g)
            mean[:, r * P:(r + 1) * P, c * P:(c + 1) * P] = source._templates[k]
            logs[k, q] = -np.sum((I - mean) ** 2) / (2 * s2)  # + a constant for all (k, q)
    joint = np.log(np.exp(logs - logs.max()).sum(axis=1)) + logs.max()  # uniform priors
    return joint - (np.log(np.exp(joint - joint.max()).sum()) + joint.max())


@pytest.mark.parametrize("options", [{}, {"C": 2, "grid": 2, "patch_size": 4, "sigma": 1.0,
                                          "n_classes": 3}])
def test_the_posterior_is_exact(options):
    source = TemplateImages(**options, n_validation=16)
    batch = source.batch(0, 6)
    fast = source.log_posterior(batch.x)
    for b in range(6):
        np.testing.assert_allclose(fast[b], brute_force_log_posterior(source, batch.x[b]),
                                   atol=1e-9)


def test_batches_depend_only_on_seed_and_step_and_the_source_round_trips():
    a, b = make_source("images", seed=3), source_from_dict(make_source("images", seed=3)
                                                           .to_dict())
    np.testing.assert_array_equal(a.batch(7, 5).x, b.batch(7, 5).x)
    assert not np.array_equal(a.batch(7, 5).x, a.batch(8, 5).x)
    assert not np.array_equal(a.validation_batch().x[:5], a.batch(0, 5).x)
    bayes = a.bayes()
    assert 0.5 < bayes["bayes_accuracy"] < 0.99 and bayes["bayes_accuracy_stderr"] < 0.01


def test_a_perfect_model_scores_the_bayes_limits():
    source = TemplateImages(n_validation=512)
    result = source.evaluate(lambda batch: source.log_posterior(batch.x))
    assert result["accuracy_gap"] == 0.0
    assert result["val_loss"] == pytest.approx(source.bayes()["bayes_loss"])


@pytest.mark.parametrize(("options", "message"), [({"sigma": 0.0}, "sigma must be"),
                                                  ({"n_classes": 1}, "n_classes must be >= 2"),
                                                  ({"grid": 0}, "grid must be an integer")])
def test_bad_options_are_refused(options, message):
    with pytest.raises(SourceError, match=message):
        TemplateImages(**options)
