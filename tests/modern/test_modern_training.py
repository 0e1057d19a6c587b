"""Training and inference of the modern decoder (spec: Algorithm 65 under Algorithms 13-14):
`train --arch modern-decoder` reaches the entropy rate of the Markov source, its checkpoints
sample, and decoding through the ring-buffer KV cache equals decoding without it."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from formal_transformers.canonical import random_parameters
from formal_transformers.errors import ConfigError, SourceError
from formal_transformers.hyperparameters import ModernDTransformerConfig
from formal_transformers.sampling import sample
from formal_transformers.training_run import plan_run, train
from torch_impl.inference import d_inference
from torch_impl.modern_decoder import ModernDTransformer


@pytest.mark.slow
def test_modern_decoder_reaches_the_entropy_rate_of_an_order2_markov_chain():
    run = plan_run("markov", arch="modern-decoder", eval_every=10**9)
    start = time.perf_counter()
    result = train(run)
    seconds = time.perf_counter() - start
    H, f = result["limits"][0]["value"], result["final"]
    report = (f"val_loss {f['val_loss']:.4f} ± {f['val_loss_stderr']:.4f}, entropy rate "
              f"{H:.4f}, excess KL {f['kl_excess']:.4f}, {seconds:.1f} s")
    assert run.model["arch"] == "modern-decoder" and run.model["positions"] == "rope", run.model
    # the decoder's bound; measured 25 s alone, up to 155 s beside other test runs on the shared
    # 2-core machine (timings there are not meaningful)
    assert seconds <= 120, report
    assert f["val_loss"] - H <= 0.02 and f["kl_excess"] <= 0.02, report


def test_a_short_modern_run_checkpoints_and_samples(tmp_path):
    run = plan_run("markov", arch="modern-decoder", steps=3, eval_every=10**9,
                   source_options={"n_validation": 64}, model={"G": 1, "windows": (4, None)})
    train(run, tmp_path)
    greedy = sample(tmp_path, prompt="ab", temperature=0, max_new_tokens=20)
    assert greedy["arch"] == "modern-decoder" and len(greedy["tokens"]) == 20
    assert sample(tmp_path, prompt="ab", temperature=0, max_new_tokens=20) == greedy


def test_the_modern_decoder_trains_on_decoder_sources_only_and_not_on_the_reference():
    with pytest.raises(SourceError, match="modern-decoder"):
        plan_run("reverse", arch="modern-decoder")
    with pytest.raises(ConfigError, match="hand-written backward"):
        train(plan_run("markov", arch="modern-decoder", impl="reference", steps=1))


@pytest.mark.parametrize("windows", [None, (2, 3)])
def test_greedy_decoding_through_the_ring_buffer_equals_decoding_without_a_cache(windows):
    config = ModernDTransformerConfig(N_V=9, l_max=16, d_e=8, d_mlp=12, L=2, H=4, G=2,
                                      windows=windows)
    model = ModernDTransformer.from_canonical(
        config, random_parameters(config, np.random.default_rng(3)), dtype=torch.float64)
    prompt = torch.tensor([[1, 2, 3], [4, 0, 8]])
    cached = d_inference(model, prompt, 13, greedy=True)
    recomputed = d_inference(model, prompt, 13, greedy=True, use_cache=False)
    assert torch.equal(cached, recomputed)
    cache = model.new_cache(2)
    assert [k.shape[2] for k in cache.k] == [16 if w is None else w for w in windows or (None,) * 2]
