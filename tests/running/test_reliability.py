"""Bad input, interrupts, resume, atomic files: nothing finished is ever lost."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwprof.presentation.cli import main
from hwprof.errors import BadInput
from hwprof.running.results import read_results
from hwprof.running.rundir import atomic_write_text, create_run_dir
from hwprof.running.suite import parse_suite, suite_from_data

# ------------------------------------------------------------------------------------------ fuzzing

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10 ** 8), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["fp32", "bf16", "int8", "causal", "window:4", "2:4",
                                                           "unstructured:0.5", "block:8:0.5", "flash", "fwd+bwd"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=4), max_leaves=12)
group = st.fixed_dictionaries({}, optional={
    "shapes": st.lists(st.lists(st.integers(-2, 70), min_size=0, max_size=7), max_size=3) | values,
    "precisions": st.lists(st.sampled_from(["fp32", "fp64", "bf16", "int8", "fp9", "", 3]), max_size=3) | values,
    "sparsity": st.lists(st.sampled_from(["dense", "2:4", "unstructured:0.3", "unstructured:2", "block:8:0.5",
                                          "block:0:1", "x"]), max_size=3),
    "masks": st.lists(st.sampled_from(["none", "causal", "window:8", "window:-1", "diag"]), max_size=3),
    "backends": st.lists(st.sampled_from(["auto", "math", "flash", "cudnn", "xla"]), max_size=3),
    "passes": st.lists(st.sampled_from(["fwd", "fwd+bwd", "bwd"]), max_size=2),
    "device": st.sampled_from(["cpu", "cuda", "tpu"]),
    "junk": values,
})
suite_dicts = st.fixed_dictionaries({}, optional={
    "name": values, "budget_s": values, "ci_target": values, "device": values, "warmup_s": values,
    "matmul": st.lists(group, max_size=2) | values, "attention": st.lists(group, max_size=2) | values,
    "extra": values,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suite_dicts)
def test_suite_parser_accepts_or_rejects_cleanly(data):
    try:
        suite = suite_from_data(data, "fuzz.toml", "cpu")
    except BadInput as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert suite.specs and all(s.config_id for s in suite.specs)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_suite_parser_on_arbitrary_text(text):
    try:
        parse_suite(text, "fuzz.toml")
    except BadInput:
        pass


def test_hostile_suite_files_exit_2(tmp_path, capsys):
    cases = {
        "binary.toml": b"\x00\xff\xfe garbage",
        "deep.toml": b"a = " + b"[" * 500 + b"]" * 500,
        "huge.toml": b"[[matmul]]\nshapes = [[1048576, 1048576, 1048576]]\n",   # more than any memory
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        assert main(["run", "--suite", str(p), "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("hwprof: error:"), (name, err)
    assert "GiB" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------ files

def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "run.json"
    atomic_write_text(p, "old")
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["run.json"]


def test_runs_started_at_the_same_moment_get_different_directories(tmp_path):
    dirs, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        dirs.append(create_run_dir(tmp_path, "s", "cpu"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(dirs)) == 8


# ------------------------------------------------------------------------------------------ interrupts

SLOW_SUITE = """
name = "interruptible"
budget_s = 0.3
min_window_s = 0.3
warmup_s = 0.0
ci_target = 0.001

[[matmul]]
shapes = [[64, 64, 64], [96, 96, 96]]
precisions = ["fp32", "fp64", "int8", "fp8_e4m3"]
"""


def _start(args, cwd):
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "hwprof", "run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(out: Path, n: int, timeout: float = 120) -> Path:
    t0 = time.time()
    while time.time() - t0 < timeout:
        for d in out.glob("*/results.csv"):
            if len(d.read_text().splitlines()) >= n + 1:
                return d.parent
        time.sleep(0.05)
    raise AssertionError("run produced no rows in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume_gives_the_uninterrupted_set(tmp_path, sig):
    suite = tmp_path / "s.toml"
    suite.write_text(SLOW_SUITE)
    out = tmp_path / "out"
    common = ["--energy", "none", "--quiet", "--no-report"]
    proc = _start(["--suite", str(suite), "--out", str(out), *common], tmp_path)
    run_dir = _wait_for_rows(out, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted"
    partial = read_results(run_dir / "results.csv")              # a valid CSV of complete rows
    assert 2 <= len(partial) < 8 and partial["status"].isin(["ok", "unsupported", "error"]).all()

    done = _start(["--resume", str(run_dir), *common], tmp_path)
    done.communicate(timeout=300)
    assert done.returncode == 0
    final = read_results(run_dir / "results.csv")
    assert final["config_id"].tolist()[: len(partial)] == partial["config_id"].tolist()   # not repeated
    assert sorted(final["config_id"]) == sorted(meta["suite"]["config_ids"])
    assert len(final) == len(set(final["config_id"])) == 8
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_resume_refuses_a_different_suite_or_device(tmp_path, tiny_suite, fast_options, capsys):
    import hwprof
    df = hwprof.run_suite(str(tiny_suite), **fast_options)
    run_dir = df.attrs["run_dir"]
    other = tmp_path / "other.toml"
    other.write_text("[[matmul]]\nshapes = [[32, 32, 32]]\n")
    assert main(["run", "--resume", run_dir, "--suite", str(other)]) == 2
    assert "suite differs" in capsys.readouterr().err
    meta_path = Path(run_dir) / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["device"] = "cuda:0"
    meta_path.write_text(json.dumps(meta))
    assert main(["run", "--resume", run_dir, "--energy", "none"]) == 2
    assert "used device cuda:0" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nope")]) == 2
