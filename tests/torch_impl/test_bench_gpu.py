"""The GPU benchmarks' device-independent logic, run on the CPU at tiny shapes.

The figures themselves need an H100/H200 (benchmarks/gpu.sh); what is checked here is that
every side runs under the one training harness and computes the same objective, that MFU and
the HBM fractions are the stated arithmetic, that the decode benchmark refuses wrong tokens,
and that gpu.sh's own command still runs end to end (``--smoke``: CPU, tiny shapes).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from formal_transformers.canonical import init_parameters
from formal_transformers.errors import BenchmarkCheckError, ConfigError, TrainingDivergedError
from formal_transformers.presets import get_preset
from torch_impl import bench_gpu, bench_gpu_decode
from torch_impl.bench_nanogpt import load_nanogpt, nanogpt_model

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
TINY = bench_gpu.gpt2_training_config(N_V=64, l_max=16, d_e=32, L=2, H=2)
NANOGPT = os.environ.get("FT_NANOGPT")
needs_nanogpt = pytest.mark.skipif(NANOGPT is None, reason="FT_NANOGPT does not point at a "
                                   "checkout of karpathy/nanoGPT")


def test_peak_flops_come_from_the_device_table_or_the_flag():
    assert bench_gpu.peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12  # H100 SXM
    assert bench_gpu.peak_flops("NVIDIA H200") == 989.4e12
    assert bench_gpu.peak_flops("NVIDIA H100 PCIe") == 756e12  # not the SXM figure
    assert bench_gpu.peak_flops("Quadro RTX 8000", override=130e12) == 130e12
    with pytest.raises(ConfigError, match="pass it with --peak-flops"):
        bench_gpu.peak_flops("Quadro RTX 8000")
    with pytest.raises(ConfigError, match="--peak-flops must be a finite number > 0"):
        bench_gpu.peak_flops("NVIDIA H200", override=-1.0)


def test_model_flops_per_token_are_nanogpts_6n_plus_attention():
    """N counts every parameter but W_p; a tied W_e once (as the unembedding)."""
    layers = 85_056_000  # GPT-2 small's 12 layers and ln_f
    attention = 12 * 12 * 768 * 1024
    untied = get_preset("gpt2-small")  # W_e is a lookup; W_u is counted
    assert bench_gpu.flops_per_token(untied, 1024) == 6 * (layers + 768 * 50257) + attention
    tied = bench_gpu.gpt2_training_config()  # nanoGPT's 50304-token vocabulary
    assert bench_gpu.flops_per_token(tied, 1024) == 6 * (layers + 768 * 50304) + attention


def test_the_harness_counts_warmup_and_timed_steps():
    calls = []
    seconds = bench_gpu.time_steps(lambda: calls.append(1), CPU, steps=3, warmup=2)
    assert len(calls) == 5 and seconds >= 0
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        bench_gpu.time_steps(lambda: None, CPU, steps=0, warmup=0)


def test_a_non_finite_training_loss_fails_the_benchmark():
    model = torch.nn.Linear(2, 2)
    side = bench_gpu.TrainingSide("broken", model, torch.optim.AdamW(model.parameters()),
                                  lambda: model.weight.sum() * float("nan"))
    with pytest.raises(TrainingDivergedError, match="broken: a non-finite training loss"):
        bench_gpu.measure_sides([side], 4, CPU, steps=1, warmup=0, rounds=1, flops=1.0,
                                peak=None)


def _check_training_report(report: dict, sides: list[str]) -> None:
    assert list(report["sides"]) == sides
    for name, r in report["sides"].items():
        assert r["tokens_per_round"] == 2 * 16 * 2 and len(r["seconds_per_round"]) == 2
        assert r["seconds"] == statistics.median(r["seconds_per_round"])
        assert r["tokens_per_s"] == pytest.approx(r["tokens_per_round"] / r["seconds"])
        # the same objective on every side: the mean token loss, ln N_V at initialisation
        assert abs(r["first_loss"] - math.log(TINY.N_V)) < 0.3, name
        assert math.isfinite(r["last_loss"]) and r["mfu"] is None  # no peak on the CPU
    ours = report["sides"]["torch_impl"]["tokens_per_s"]
    assert report["ratio_torch_impl_vs_transformers"] == pytest.approx(
        ours / report["sides"]["transformers"]["tokens_per_s"])
    assert report["met_target_mfu"] is None and report["met_target_vs_nanogpt"] is None


def test_torch_impl_and_transformers_train_under_the_same_harness_on_the_cpu():
    report = bench_gpu.bench_training(TINY, CPU, batch_size=2, l=16, steps=2, warmup=1,
                                      rounds=2, compile=False)
    _check_training_report(report, ["torch_impl", "transformers"])
    assert report["ratio_torch_impl_vs_nanogpt"] is None  # no checkout given


@needs_nanogpt
def test_nanogpt_trains_under_the_same_harness_and_counts_the_same_parameters():
    report = bench_gpu.bench_training(TINY, CPU, batch_size=2, l=16, steps=2, warmup=1,
                                      rounds=2, compile=False, nanogpt=NANOGPT)
    _check_training_report(report, ["torch_impl", "nanoGPT", "transformers"])
    assert report["ratio_torch_impl_vs_nanogpt"] == pytest.approx(
        report["sides"]["torch_impl"]["tokens_per_s"]
        / report["sides"]["nanoGPT"]["tokens_per_s"])
    # our FLOPs formula is nanoGPT's estimate_mfu on nanoGPT's own parameter count
    n = nanogpt_model(load_nanogpt(NANOGPT), TINY).get_num_params()
    assert bench_gpu.flops_per_token(TINY, 16) == 6 * n + 12 * TINY.L * TINY.d_e * 16


def test_a_missing_or_foreign_nanogpt_checkout_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="holding model.py"):
        load_nanogpt(tmp_path / "nowhere")
    (tmp_path / "model.py").write_text("class GPTConfig:\n    pass\n")
    with pytest.raises(ConfigError, match="defines no GPT;"):
        load_nanogpt(tmp_path)
    (tmp_path / "model.py").write_text("raise ImportError('half a checkout')\n")
    with pytest.raises(ConfigError, match="half a checkout"):
        load_nanogpt(tmp_path)


def test_the_decode_report_is_the_stated_arithmetic():
    config = TINY  # tied: W_e is read whole, as the unembedding
    report = bench_gpu_decode.bench_decode(config, CPU, l_prompt=4, l_gen=6, repeats=1,
                                           dtype=torch.float32, compiled=False,
                                           copy_bytes=1 << 20)
    d_e, L = config.d_e, config.L
    per_layer = 12 * d_e * d_e + 13 * d_e
    assert report["weight_bytes_per_token"] == 4 * (L * per_layer + 2 * d_e + 64 * d_e)
    assert report["cuda_graph"] is False and report["tokens_identical_graph_vs_eager"]
    limit = report["weight_read_limit_tokens_per_s"]["measured_bandwidth"]
    assert limit == pytest.approx(report["bandwidth_bytes_per_s"]["measured_copy"]
                                  / report["weight_bytes_per_token"])
    rows = report["decoders"]
    for name, row in rows.items():
        assert row["tokens_per_s"] == pytest.approx(6 / row["seconds"])
        assert row["fraction_of_limit_measured_bandwidth"] == pytest.approx(
            row["tokens_per_s"] / limit)
        assert row["tokens_agreeing_with_eager"] == 6, name  # float32: the same tokens
    assert report["ratio_torch_impl_vs_transformers_generate"] == pytest.approx(
        rows["transformers_generate"]["seconds"] / rows["torch_impl_cuda_graph"]["seconds"])
    assert report["met_target_vs_transformers"] is None  # a CPU run has no verdict


def test_gpt2_reads_247_mb_of_bf16_weights_per_decoded_token():
    """The README's figure: every parameter of tied GPT-2 124M but the position table."""
    import dataclasses

    from torch_impl.models import DTransformer

    config = dataclasses.replace(get_preset("gpt2-small"), tied_unembedding=True)
    with torch.device("meta"):
        model = DTransformer(config).to(torch.bfloat16)
    assert bench_gpu_decode.weight_bytes_per_token(model) == 2 * (85_056_000 + 768 * 50257)


def test_a_graph_decoder_of_wrong_tokens_fails_the_decode_benchmark(monkeypatch):
    from torch_impl.cuda_graph_decode import CUDAGraphDecoder

    real = CUDAGraphDecoder.generate

    def off_by_one(self, prompt, l_gen, **kw):
        return (real(self, prompt, l_gen, **kw) + 1) % self.model.config.N_V

    monkeypatch.setattr(CUDAGraphDecoder, "generate", off_by_one)
    with pytest.raises(BenchmarkCheckError, match="differ from the eager static decoder's "
                                                  "from token 0 of 4"):
        bench_gpu_decode.bench_decode(TINY, CPU, l_prompt=2, l_gen=4, repeats=1,
                                      compiled=False, transformers=False, copy_bytes=1 << 10)


def test_a_graph_decoder_that_goes_wrong_while_timed_fails_the_decode_benchmark(monkeypatch):
    from torch_impl.cuda_graph_decode import CUDAGraphDecoder

    real, calls = CUDAGraphDecoder.generate, []

    def right_then_wrong(self, prompt, l_gen, **kw):
        calls.append(1)
        tokens = real(self, prompt, l_gen, **kw)
        return tokens if len(calls) == 1 else (tokens + 1) % self.model.config.N_V

    monkeypatch.setattr(CUDAGraphDecoder, "generate", right_then_wrong)
    with pytest.raises(BenchmarkCheckError, match="differ from the eager static decoder's"):
        bench_gpu_decode.bench_decode(TINY, CPU, l_prompt=2, l_gen=4, repeats=1,
                                      compiled=False, transformers=False, copy_bytes=1 << 10)


def test_the_graph_decoder_off_cuda_is_the_eager_static_decoder():
    from torch_impl.cuda_graph_decode import CUDAGraphDecoder
    from torch_impl.inference import d_inference
    from torch_impl.models import DTransformer

    params = init_parameters(TINY, np.random.default_rng(1), dtype=np.float32)
    model = DTransformer.from_canonical(TINY, params).eval()
    decoder = CUDAGraphDecoder(model, 1, 12)
    prompt = torch.tensor([3, 1, 4])
    assert decoder.graphed is False
    assert torch.equal(decoder.generate(prompt, 9, greedy=True),
                       d_inference(model, prompt, 9, greedy=True))


def test_gpu_sh_runs_its_command_end_to_end_as_a_cpu_smoke_test(tmp_path):
    """benchmarks/gpu.sh --smoke: the script's own bench invocation on the CPU, tiny shapes."""
    out = tmp_path / "bench_gpu.json"
    env = os.environ | {"PYTHON": sys.executable, "OUT": str(out), "NANOGPT": NANOGPT or "",
                        "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--smoke"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    gpu = json.loads(out.read_text())["gpu"]
    assert gpu["quick"] is True
    provenance = gpu["provenance"]
    assert {"command", "date", "commit", "machine", "torch", "device"} <= set(provenance)
    assert "--gpu-train" in provenance["command"] and provenance["device"] == "cpu"
    assert provenance["script"] == "bash benchmarks/gpu.sh --smoke"
    assert gpu["training"]["compile"] == {"backend": "eager"}  # --compile, cheaply
    assert set(gpu["training"]["sides"]) == {"torch_impl", "transformers"} | (
        {"nanoGPT"} if NANOGPT else set())
    assert gpu["decode"]["tokens_identical_graph_vs_eager"] is True


def test_gpu_sh_refuses_an_unknown_argument():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--fast"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr


def test_an_optional_decoder_that_fails_is_reported_and_a_required_one_ends_the_run():
    def broken():
        raise RuntimeError("no kernel")

    expected = torch.tensor([1, 2, 3])
    decoders = {"torch_impl_cuda_graph": lambda: expected, "torch_impl_compiled": broken,
                "transformers_generate": lambda: torch.tensor([1, 2, 0])}
    agree, errors = bench_gpu_decode._first_calls(decoders, expected)
    assert errors == {"torch_impl_compiled": "RuntimeError: no kernel"}
    assert "torch_impl_compiled" not in decoders and agree["transformers_generate"] == 2
    with pytest.raises(RuntimeError, match="no kernel"):
        bench_gpu_decode._first_calls({"transformers_generate": broken}, expected)


def test_gpu_sh_without_a_gpu_fails_with_the_reason(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    env = os.environ | {"PYTHON": sys.executable, "REPORTS": str(tmp_path)}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "decode"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "need a CUDA device" in done.stderr
    assert not (tmp_path / "bench_gpu_decode.json").exists()  # no figures invented
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "tests"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "the CUDA tests would only skip" in done.stderr


def test_a_failed_gpu_part_keeps_the_other_parts_figures_and_ends_the_command(
        tmp_path, monkeypatch):
    from formal_transformers.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("graph capture failed")

    monkeypatch.setattr(bench_gpu_decode, "bench_decode", broken)
    out = tmp_path / "gpu.json"
    argv = ["bench", "--no-cpu", "--gpu-train", "--gpu-decode", "--gpu-device", "cpu",
            "--quick", "--json", str(out)]
    with pytest.raises(RuntimeError, match="graph capture failed"):
        main(argv)
    gpu = json.loads(out.read_text())["gpu"]
    assert gpu["decode"] == {"error": "RuntimeError: graph capture failed"}
    assert gpu["training"]["sides"]["torch_impl"]["tokens_per_s"] > 0


def test_a_wrong_nanogpt_path_ends_the_gpu_command_before_any_work(tmp_path, capsys):
    from formal_transformers.cli import main

    out = tmp_path / "gpu.json"
    assert main(["bench", "--no-cpu", "--gpu-train", "--gpu-decode", "--gpu-device", "cpu",
                 "--quick", "--nanogpt", str(tmp_path / "none"), "--json", str(out)]) == 2
    assert "holding model.py" in capsys.readouterr().err and not out.exists()


def test_gpu_wheels_sh_is_valid_bash():
    """It downloads (not in CI); its syntax at least cannot rot."""
    done = subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_wheels.sh")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
