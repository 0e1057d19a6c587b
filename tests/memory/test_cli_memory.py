"""`formal-transformers memory` (issue 6): the breakdown, JSON, --measure and bad input."""

from __future__ import annotations

import json

import pytest

from formal_transformers.cli import main


def test_gpt2_small_breakdown_prints_and_writes_json(tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = main(["memory", "--preset", "gpt2-small", "--batch", "8", "--seq", "1024",
               "--dtype", "bfloat16", "--optimizer", "adamw", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for needle in ("163,037,184", "124,439,808", "optimizer state", "KV cache", "naive",
                   "sdpa", "peak"):
        assert needle in text
    data = json.loads(out.read_text())
    assert data["parameters"]["total"] == 163_037_184
    assert data["training"]["sdpa"]["peak_bytes"] < data["training"]["naive"]["peak_bytes"]
    assert data["inference"]["cache_positions"] == 1024


def test_measure_on_a_tiny_preset_is_within_tolerance(capsys):
    rc = main(["memory", "--preset", "tiny-decoder", "--batch", "2", "--seq", "32",
               "--measure"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "Measured beside predicted" in text and "NO" not in text


def test_hyperparameters_without_a_preset(capsys):
    rc = main(["memory", "--arch", "encoder-decoder", "--N_V", "100", "--l_max", "64",
               "--d_e", "32", "--d_mlp", "64", "--L_enc", "2", "--L_dec", "1", "--H", "4",
               "--seq", "16", "--src-seq", "24"])
    assert rc == 0
    assert "l_z 24" in capsys.readouterr().out


def test_preset_override_changes_the_count(tmp_path):
    out = tmp_path / "m.json"
    main(["memory", "--preset", "gpt2-small", "--L", "1", "--seq", "8", "--json", str(out)])
    assert json.loads(out.read_text())["config"]["L"] == 1


@pytest.mark.parametrize("argv, message", [
    (["memory"], "give --preset NAME or --arch"),
    (["memory", "--arch", "decoder", "--N_V", "10"], "--arch decoder needs --H"),
    (["memory", "--preset", "gpt2-small", "--seq", "4096"], "exceeds the context size"),
    (["memory", "--preset", "gpt2-small", "--L_enc", "2"], "has no hyperparameter 'L_enc'"),
    (["memory", "--preset", "gpt2-small", "--measure", "--max-measure-bytes", "1e6"],
     "exceeds --max-measure-bytes"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_reference_accounting_has_one_column_and_no_kv_cache(capsys):
    assert main(["memory", "--preset", "small-decoder", "--seq", "32", "--reference"]) == 0
    text = capsys.readouterr().out
    assert "reference" in text and "float64" in text and "KV cache" not in text


def test_modern_decoder_from_flags_measures_with_three_estimates(tmp_path, capsys):
    """--arch modern-decoder with its selections; --measure prints the comparison of
    spec/memory.md section 12 and writes each estimate's error in the JSON."""
    out = tmp_path / "m.json"
    rc = main(["memory", "--arch", "modern-decoder", "--N_V", "64", "--l_max", "64",
               "--d_e", "32", "--d_mlp", "48", "--L", "2", "--H", "4", "--kv-heads", "2",
               "--window", "8", "--tie-embeddings", "--batch", "2", "--seq", "32",
               "--measure", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "Three estimates" in text and "Korthikanti" in text
    data = json.loads(out.read_text())
    assert data["config"]["G"] == 2 and data["config"]["windows"] == [8, 8]
    peaks = [m for m in data["measured"] if "estimates" in m]
    assert len(peaks) == 3  # two training paths and the decode
    for m in peaks:
        assert set(m["estimates"]) == {"ours", "static", "korthikanti"}


@pytest.mark.parametrize("argv, message", [
    (["--kv-heads", "3"], "G must divide H"),
    (["--windows", "8,x"], "--windows takes positive integers or 'none'"),
    (["--windows", "8"], "windows must hold L=2 entries"),
    (["--window", "8", "--windows", "8,8"], "not both"),
    (["--rope-fraction", "0.01"], "d_r must be even and >= 2"),
])
def test_bad_modern_flags_are_typed_errors_naming_the_expected_value(argv, message, capsys):
    base = ["memory", "--preset", "tiny-llama", "--seq", "16"]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_rope_flags_change_the_tables_and_keep_the_preset_theta(tmp_path):
    out = tmp_path / "m.json"
    main(["memory", "--preset", "tiny-llama", "--seq", "16", "--rope-layout", "interleaved",
          "--rope-fraction", "0.5", "--json", str(out)])
    config = json.loads(out.read_text())["config"]
    assert config["rope"]["layout"] == "interleaved" and config["rope"]["fraction"] == 0.5
    assert config["rope"]["theta"] == 10000.0
