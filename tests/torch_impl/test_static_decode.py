"""The static-shape decode step (torch_impl/static_decode.py) computes Algorithm 14's
distributions like the eager KV-cache loop, traces into one graph without breaks, and refuses
what it cannot hold (property kv_cache.equivalence, applied to the fast path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from formal_transformers.canonical import init_parameters
from formal_transformers.errors import ConfigError, SequenceLengthError
from formal_transformers.hyperparameters import DTransformerConfig
from torch_impl.inference import d_inference
from torch_impl.models import DTransformer
from torch_impl.static_decode import StaticDecoder

CONFIG = DTransformerConfig(N_V=50, l_max=40, d_e=16, d_mlp=32, L=2, H=2)


def _model(dtype=np.float64) -> DTransformer:
    params = init_parameters(CONFIG, np.random.default_rng(0), std=0.5, dtype=dtype)
    return DTransformer.from_canonical(CONFIG, params)


def test_every_step_gives_the_logits_of_the_full_forward_pass():
    """Step i's logits equal the last column of the whole transformer on the sequence so far
    (Algorithm 10, no cache): the masked-out buffer positions change nothing."""
    model = _model()
    x = torch.randint(0, CONFIG.N_V, (3, 30), generator=torch.Generator().manual_seed(1))
    dec = StaticDecoder(model, B=3, capacity=35)
    with torch.inference_mode():
        dec.cache.reset()
        model.last_logits(x[:, :4], dec.cache)  # prefill 4 tokens
        for t in range(4, 30):
            got = dec.step(x[:, t:t + 1], torch.tensor([t]))
            want = model(x[:, :t + 1])[:, -1]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("compile", [False, {"backend": "eager"}])
def test_generated_tokens_equal_the_eager_loop_greedy_and_sampled(compile):
    """compile={"backend": "eager"} runs torch.compile's tracing with fullgraph=True: a graph
    break in the step would raise here. Tokens: greedy and sampled from the same seed."""
    model = _model()
    prompt = torch.randint(0, CONFIG.N_V, (2, 5), generator=torch.Generator().manual_seed(2))
    dec = StaticDecoder(model, B=2, capacity=30, compile=compile)
    want = d_inference(model, prompt, 26, greedy=True)
    assert torch.equal(dec.generate(prompt, 26, greedy=True), want)
    assert torch.equal(dec.generate(prompt, 26, greedy=True), want)  # buffers reused
    sampled = [f(prompt, 20, tau=1.5, generator=torch.Generator().manual_seed(3))
               for f in (dec.generate, lambda *a, **k: d_inference(model, *a, **k))]
    assert torch.equal(*sampled)
    assert len(set(sampled[0].flatten().tolist())) > 3  # a real distribution was sampled


def test_the_inductor_compiled_step_decodes_the_same_tokens_without_recompiling():
    """The real compiler (inductor, C++ wrapper on CPU), float32. After the first step the
    decoder skips guard evaluation, under which torch raises on any recompilation: three
    generate calls, greedy and sampled, passing means one graph served every step."""
    model = _model(np.float32)
    prompt = torch.randint(0, CONFIG.N_V, (2, 5), generator=torch.Generator().manual_seed(2))
    dec = StaticDecoder(model, B=2, capacity=30, compile=True)
    want = d_inference(model, prompt, 26, greedy=True)
    assert torch.equal(dec.generate(prompt, 26, greedy=True), want)
    assert torch.equal(dec.generate(prompt, 26, greedy=True), want)
    sampled = [f(prompt, 20, tau=1.5, generator=torch.Generator().manual_seed(3))
               for f in (dec.generate, lambda *a, **k: d_inference(model, *a, **k))]
    assert torch.equal(*sampled)


@pytest.mark.parametrize("in_out", [True, False])
def test_the_decoder_follows_the_model_when_its_weights_change(in_out):
    """The (in, out) weight copies (the CPU default) are refreshed after an in-place update
    (an optimizer step) and after load_state_dict: the tokens are the updated model's."""
    model = _model()
    prompt = torch.randint(0, CONFIG.N_V, (1, 5), generator=torch.Generator().manual_seed(4))
    dec = StaticDecoder(model, capacity=30, weights_in_out=in_out)
    before = dec.generate(prompt, 20, greedy=True)
    assert torch.equal(before, d_inference(model, prompt, 20, greedy=True))
    with torch.no_grad():
        for p in model.parameters():  # a large "optimizer step", in place
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(5),
                               dtype=p.dtype))
    after = d_inference(model, prompt, 20, greedy=True)
    assert not torch.equal(after, before)  # the update changes the greedy tokens
    assert torch.equal(dec.generate(prompt, 20, greedy=True), after)
    model.load_state_dict(_model().state_dict())
    assert torch.equal(dec.generate(prompt, 20, greedy=True), before)


def test_a_one_dimensional_prompt_returns_one_dimensional_tokens():
    model = _model(np.float32)
    prompt = torch.tensor([1, 2, 3])
    out = StaticDecoder(model, capacity=10).generate(prompt, 8, greedy=True)
    assert out.shape == (8,) and torch.equal(out, d_inference(model, prompt, 8, greedy=True))


def test_what_the_buffers_cannot_hold_is_refused():
    model = _model(np.float32)
    with pytest.raises(ConfigError, match="capacity must be an integer >= 1 and <= 40, got 41"):
        StaticDecoder(model, capacity=41)
    dec = StaticDecoder(model, B=1, capacity=10)
    with pytest.raises(SequenceLengthError, match="exceeds the decoder's capacity 10"):
        dec.generate(torch.tensor([[1, 2, 3]]), 9, greedy=True)
    with pytest.raises(SequenceLengthError, match="built for B = 1 sequences"):
        dec.generate(torch.zeros(2, 3, dtype=torch.long), 2, greedy=True)
