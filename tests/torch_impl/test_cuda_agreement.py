"""Whole models in bf16 on a device agree with the float64 reference (reference.forward_agreement).

The D, ED, E transformers (spec: Algorithms 8-10) and the modern decoder (Algorithm 65) run
through conformance/adapters/torch_device.py and are checked by the suite's own check with its
bf16 tolerance (conformance/properties/reference.py). On CUDA: PyTorch's kernel choice, and
SDPA restricted to the flash and to the memory-efficient kernels; the CUDA-graph decoder and
the GPU benchmarks at tiny shapes. Without a CUDA device those are skipped with the reason
shown; the adapter itself is checked on the CPU (and shown able to fail).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.adapters import torch_device
from conformance.adapters.torch_device import ARCHITECTURES, DeviceTorchAdapter
from conformance.runner import run
from formal_transformers.canonical import init_parameters
from formal_transformers.hyperparameters import DTransformerConfig

AGREEMENT = "reference.forward_agreement"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _agreement(adapter: DeviceTorchAdapter, profile: str) -> dict:
    """The forward-agreement cells (algorithm, dtype) -> Result of the adapter's algorithms."""
    results = run(adapter, profile, 0, only=(AGREEMENT,), shrink=False)
    cells = {(r.algorithm, r.dtype): r for r in results if r.algorithm in adapter.algorithms}
    assert set(cells) == {(a, d) for a in adapter.algorithms for d in adapter.dtypes}
    return cells


def _failures(cells: dict) -> dict:
    return {k: f"{r.status}: {r.reason} {r.observed}"[:500] for k, r in cells.items()
            if r.status != "passed" or r.examples == 0}


def test_whole_models_on_the_device_adapter_agree_with_the_reference_on_the_cpu():
    assert torch_device.CPU_BF16.algorithms == ARCHITECTURES  # all four, bf16 and float32
    assert _failures(_agreement(torch_device.CPU_BF16, "quick")) == {}


def test_the_readme_verify_command_loads_a_device_adapter_instance(tmp_path):
    """benchmarks/README.md's command, with the CPU instance: exit 0, every cell passed."""
    import json

    from formal_transformers.cli import main

    out = tmp_path / "verify.json"
    assert main(["verify", "--impl", "conformance.adapters.torch_device:CPU_BF16", "--only",
                 AGREEMENT, "--profile", "quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["implementation"] == "torch_impl[cpu]"
    assert report["summary"]["passed"] == 8 and report["summary"]["failed"] == 0  # 4 x 2 dtypes


def test_a_device_adapter_returning_wrong_probabilities_is_caught():
    class Shifted(DeviceTorchAdapter):
        def _probabilities(self, config, params, *tokens):  # P of the next vocabulary entry
            return np.roll(super()._probabilities(config, params, *tokens), 1, axis=-1)

    cells = _agreement(Shifted("cpu", dtypes=("float32",), algorithms=("d_transformer",)),
                       "quick")
    assert [r.status for r in cells.values()] == ["failed"]


def test_kernel_adapters_draw_head_sizes_the_fused_kernels_serve():
    adapter = DeviceTorchAdapter("cpu", head_multiple=8)
    assert adapter.constrain("d_transformer", {"d_e": 6, "H": 2})["d_e"] == 16  # heads 3 -> 8
    assert adapter.constrain("ed_transformer", {"d_e": 16, "H": 2})["d_e"] == 16
    assert adapter.constrain("modern_d_transformer", {"d_head": 9, "H": 4, "G": 2}) == {
        "d_head": 16, "H": 4, "G": 2}
    ungrouped = DeviceTorchAdapter("cpu", grouped_heads=False)  # as CUDA's efficient kernel
    assert ungrouped.constrain("modern_d_transformer", {"d_head": 9, "H": 4, "G": 2}) == {
        "d_head": 9, "H": 4, "G": 4}
    assert DeviceTorchAdapter("cuda").head_multiple == 8  # no device is touched


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("name", ["CUDA_BF16", "CUDA_FLASH", "CUDA_EFFICIENT"])
def test_whole_models_in_bf16_on_cuda_agree_with_the_float64_reference(name):
    """PyTorch's own kernel choice, then SDPA restricted to one kernel (a kernel that cannot
    run a call raises instead of falling back): every declared model within the bf16 rule."""
    assert _failures(_agreement(getattr(torch_device, name), "ci")) == {}


def _small_model(dtype: torch.dtype):
    from torch_impl.models import DTransformer

    config = DTransformerConfig(N_V=128, l_max=64, d_e=64, d_mlp=256, L=2, H=4,
                                activation="gelu_tanh")
    params = init_parameters(config, np.random.default_rng(0), dtype=np.float32)
    return DTransformer.from_canonical(config, params, dtype=dtype, device="cuda").eval()


@pytest.mark.cuda
@needs_cuda
def test_the_cuda_graph_decoder_replays_the_eager_static_decode():
    from torch_impl.cuda_graph_decode import CUDAGraphDecoder
    from torch_impl.inference import d_inference
    from torch_impl.static_decode import StaticDecoder

    prompt = torch.tensor([[5, 17, 3, 99, 42, 8, 1, 64]], device="cuda")
    model = _small_model(torch.bfloat16)
    graph = CUDAGraphDecoder(model, 1, 40)
    assert graph.graphed
    eager = StaticDecoder(model, 1, 40).generate(prompt, 32, greedy=True)
    for _ in range(2):  # a second call replays the same graph on a reset cache
        assert torch.equal(graph.generate(prompt, 32, greedy=True), eager)
    model = _small_model(torch.float32)  # in float32 also the growing-prefix loop's tokens
    assert torch.equal(CUDAGraphDecoder(model, 1, 40).generate(prompt, 32, greedy=True),
                       d_inference(model, prompt, 32, greedy=True))


@pytest.mark.cuda
@needs_cuda
def test_the_gpu_benchmarks_run_at_tiny_shapes_on_cuda():
    from torch_impl import bench_gpu, bench_gpu_decode

    device = torch.device("cuda")
    config = bench_gpu.gpt2_training_config(N_V=128, l_max=64, d_e=64, L=2, H=4)
    train = bench_gpu.bench_training(config, device, batch_size=2, l=64, steps=2, warmup=1,
                                     rounds=1, compile=False, peak=989.4e12)
    for side in train["sides"].values():
        assert side["fused_adamw"] and 0 < side["mfu"] < 1
        assert side["max_memory_allocated_bytes"] > 0
    assert isinstance(train["met_target_mfu"], bool)
    decode = bench_gpu_decode.bench_decode(config, device, l_prompt=8, l_gen=16, repeats=2,
                                           compiled=False, copy_bytes=1 << 26)  # gpu.sh compiles
    assert decode["cuda_graph"] and decode["failed_optional_decoders"] == {}
    assert decode["bandwidth_bytes_per_s"]["measured_copy"] > 1e11  # > 100 GB/s: HBM
    assert isinstance(decode["met_target_vs_transformers"], bool)
