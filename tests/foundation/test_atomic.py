"""Issue 15, "files must never be clobbered": formal_transformers.atomic refuses destinations
that are not a regular file or a new path, checks them before any work, cleans up what killed
runs left behind, and never writes bare NaN into JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from formal_transformers import atomic
from formal_transformers.checkpoint import TMP_PREFIX, clean_stale
from formal_transformers.errors import OutputPathError


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_regular_file_or_a_new_path_is_accepted(tmp_path):
    f = tmp_path / "a.json"
    assert atomic.check_output_file(f) == f  # new
    f.write_text("old")
    atomic.check_output_file(f)  # existing regular file
    atomic.check_output_file(tmp_path / "new" / "dirs" / "b.json")  # parents get created
    atomic.write_json(tmp_path / "new" / "dirs" / "b.json", {"x": 1})
    assert json.loads((tmp_path / "new" / "dirs" / "b.json").read_text()) == {"x": 1}


@pytest.mark.parametrize("kind", ["directory", "symlink", "dangling symlink", "device", "fifo"])
def test_anything_else_is_refused_and_left_as_it_was(tmp_path, kind):
    target = tmp_path / "target.json"
    target.write_text("precious")
    p = tmp_path / "out.json"
    if kind == "directory":
        p.mkdir()
    elif kind == "symlink":
        p.symlink_to(target)
    elif kind == "dangling symlink":
        p.symlink_to(tmp_path / "nowhere")
    elif kind == "device":
        p = Path("/dev/null")
    else:
        os.mkfifo(p)
    before = os.lstat(p)
    with pytest.raises(OutputPathError, match="expected a regular file or a new path"):
        atomic.check_output_file(p, "--json")
    with pytest.raises(OutputPathError):
        atomic.write_json(p, {"x": 1})
    after = os.lstat(p)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert target.read_text() == "precious"  # a link is never written through


def test_a_destination_that_cannot_be_created_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="(?i)not a directory"):
        atomic.check_output_file(blocker / "sub" / "a.json", "--json")
    with pytest.raises(OutputPathError, match="not writable"):
        atomic.check_output_file("/proc/formal-transformers-test.json", "--json")
    with pytest.raises(OutputPathError, match="not writable"):
        atomic.check_output_dir("/proc/formal-transformers-run", "--out")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(OutputPathError, match="symbolic link"):
        atomic.check_output_dir(link, "--out")
    assert atomic.check_json_destination("-") is None  # stdout


def test_atomic_write_never_renames_over_what_appeared_meanwhile(tmp_path):
    p = tmp_path / "out.json"

    def write(tmp):  # while the file is written, someone puts a directory there
        Path(tmp).write_text("new")
        p.mkdir()

    with pytest.raises(OutputPathError, match="a directory"):
        atomic.atomic_write(p, write)
    assert p.is_dir() and not any(p.iterdir())
    assert not [q for q in tmp_path.iterdir() if q.name.endswith(".tmp")]


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    stale_file = tmp_path / f".metrics.json.{dead}.abcd1234.tmp"
    live_file = tmp_path / f".metrics.json.{live}.efgh5678.tmp"
    stale_dir = tmp_path / f"{TMP_PREFIX}{dead}-x1y2"
    live_dir = tmp_path / f"{TMP_PREFIX}{live}-z3w4"
    old_unnamed = tmp_path / ".metrics.json.qwertyui.tmp"  # written before pids were recorded
    for f in (stale_file, live_file, old_unnamed):
        f.write_text("partial")
    for d in (stale_dir, live_dir):
        d.mkdir()
        (d / "params.safetensors").write_text("partial")
    past = time.time() - 2 * atomic.STALE_AGE
    os.utime(old_unnamed, (past, past))
    removed = set(clean_stale(tmp_path))
    assert removed == {stale_file, stale_dir, old_unnamed}
    assert live_file.exists() and live_dir.exists()
    atomic.write_json(tmp_path / "metrics.json", {})  # a write cleans its own name's leftovers
    assert live_file.exists()


def test_json_never_holds_bare_nan_it_holds_null_and_says_why(tmp_path):
    data = {"loss": float("nan"), "rows": [1.0, float("inf")], "ok": 2.5}
    text = atomic.json_text(data)
    doc = json.loads(text, parse_constant=pytest.fail)  # NaN/Infinity would call it
    assert doc["loss"] is None and doc["rows"] == [1.0, None] and doc["ok"] == 2.5
    assert doc["non_finite"]["values"] == {"/loss": "nan", "/rows/1": "inf"}
    assert "null" in doc["non_finite"]["why"]
    atomic.write_json(tmp_path / "a.json", data)
    json.loads((tmp_path / "a.json").read_text(), parse_constant=pytest.fail)


def _script(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_scripts_check_their_outputs_before_measuring(tmp_path, monkeypatch):
    """benchmarks/*.py write atomically through atomic.py, and refuse a bad destination
    before minutes of measuring."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    started = time.perf_counter()
    with pytest.raises(OutputPathError, match="--out-dir"):
        _script("memory_plot").main(["--out-dir", str(blocker)])
    monkeypatch.setattr(sys, "argv", ["repeat_cpu.py", "--out", str(tmp_path)])
    with pytest.raises(OutputPathError, match="--out"):
        _script("repeat_cpu").main()
    assert time.perf_counter() - started < 30  # nothing was measured
    for name in ("memory_plot", "repeat_cpu"):
        text = (Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py").read_text()
        assert "write_text(" not in text and "write_json(" in text
