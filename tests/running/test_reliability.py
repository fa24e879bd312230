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

# Mostly valid suites from the real vocabularies, each with at most one targeted fault, so the fuzzer
# reaches the expansion and the runner instead of dying on TOML syntax or its own unknown keys.
MM_PREC = ["fp64", "fp32", "tf32", "fp16", "bf16", "fp8_e4m3", "int8"]
ATT_PREC = ["fp64", "fp32", "fp16", "bf16"]
dims = st.integers(1, 48)
matmul_group = st.fixed_dictionaries({
    "shapes": st.lists(st.one_of(st.tuples(dims, dims, dims), st.tuples(st.integers(1, 3), dims, dims, dims))
                       .map(list), min_size=1, max_size=2),
    "precisions": st.lists(st.sampled_from(MM_PREC), min_size=1, max_size=3, unique=True),
}, optional={
    "sparsity": st.lists(st.sampled_from(["dense", "2:4", "unstructured:0.3", "block:4:0.5"]), min_size=1,
                         max_size=2, unique=True),
    "passes": st.lists(st.sampled_from(["fwd", "fwd+bwd"]), min_size=1, max_size=2, unique=True),
})
attention_group = st.fixed_dictionaries({
    "shapes": st.lists(st.tuples(st.integers(1, 2), st.sampled_from([1, 2, 4]), st.integers(1, 24),
                                 st.integers(1, 24), st.sampled_from([8, 16])).map(list), min_size=1, max_size=2),
    "precisions": st.lists(st.sampled_from(ATT_PREC), min_size=1, max_size=2, unique=True),
}, optional={
    "masks": st.lists(st.sampled_from(["none", "causal", "window:4"]), min_size=1, max_size=2, unique=True),
    "backends": st.lists(st.sampled_from(["auto", "math", "flash", "efficient"]), min_size=1, max_size=2, unique=True),
})
valid_suites = st.fixed_dictionaries({
    "name": st.text("abc-_", min_size=1, max_size=8),
    "matmul": st.lists(matmul_group, min_size=1, max_size=2),
}, optional={"attention": st.lists(attention_group, min_size=1, max_size=2),
             "budget_s": st.floats(0.01, 10), "ci_target": st.floats(0.001, 1.0)})

FAULTS = {
    "unknown top key": lambda d: d.update(bogus=1),
    "unknown group key": lambda d: d["matmul"][0].update(junk=[1]),
    "bad precision": lambda d: d["matmul"][0].update(precisions=["fp9"]),
    "non-positive dim": lambda d: d["matmul"][0].update(shapes=[[0, 4, 4]]),
    "bad density": lambda d: d["matmul"][0].update(sparsity=["unstructured:1.5"]),
    "bad mask": lambda d: d.setdefault("attention", []).append({"shapes": [[1, 1, 4, 4, 8]], "masks": ["diag"]}),
    "shapes not a list": lambda d: d["matmul"][0].update(shapes="512"),
    "budget negative": lambda d: d.update(budget_s=-1.0),
    "bool as number": lambda d: d.update(ci_target=True),
    "heads not a multiple of KV heads": lambda d: d.setdefault("attention", []).append({"shapes": [[1, 3, 4, 4, 8, 2]]}),
}


def _expected_count(data) -> int:
    n = 0
    for g in data["matmul"]:
        n += len(g["shapes"]) * len(g["precisions"]) * len(g.get("sparsity", ["dense"])) * len(g.get("passes", ["fwd"]))
    for g in data.get("attention", []):
        n += len(g["shapes"]) * len(g["precisions"]) * len(g.get("masks", ["none"])) * len(g.get("backends", ["auto"]))
    return n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_suites, st.one_of(st.none(), st.sampled_from(sorted(FAULTS))))
def test_suite_parser_expands_valid_suites_and_names_each_fault(data, fault):
    import copy
    data = copy.deepcopy(data)
    if fault is not None:
        FAULTS[fault](data)
        with pytest.raises(BadInput) as e:
            suite_from_data(data, "fuzz.toml", "cpu")
        assert str(e.value).startswith("suite fuzz.toml") and "\n" not in str(e.value)
        return
    suite = suite_from_data(data, "fuzz.toml", "cpu")
    ids = [s.config_id for s in suite.specs]
    assert len(ids) == len(set(ids))
    requested = {s.config_id for s, _ in suite.candidates}
    assert len(requested) <= _expected_count(data) and requested <= set(ids)
    from hwprof.kernels.spec import reference_of
    for i, spec in enumerate(suite.specs):        # every reference present and before its configurations
        assert ids.index(reference_of(spec).config_id) <= i


def _toml(data) -> str:
    def val(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)
    lines = [f"{k} = {val(v)}" for k, v in data.items() if not isinstance(v, list) or k not in ("matmul", "attention")]
    for kind in ("matmul", "attention"):
        for g in data.get(kind, []):
            lines += ["", f"[[{kind}]]"] + [f"{k} = {val(v)}" for k, v in g.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(valid_suites, st.one_of(st.none(), st.sampled_from(sorted(FAULTS))))
def test_cli_on_fuzzed_suites_writes_every_row_or_exits_2_writing_nothing(tmp_path_factory, data, fault):
    import copy
    data = copy.deepcopy(data)
    data.update(budget_s=0.01, ci_target=1.0, warmup_s=0.0, min_window_s=0.0, rounds=2, round_s=0.0)
    if fault is not None:
        FAULTS[fault](data)
    tmp = tmp_path_factory.mktemp("fz")
    (tmp / "s.toml").write_text(_toml(data))
    code = main(["run", "--suite", str(tmp / "s.toml"), "--out", str(tmp / "out"), "--device", "cpu",
                 "--energy", "none", "--quiet", "--no-report", "--quiet-check-s", "0"])
    if fault is not None:
        assert code == 2 and not (tmp / "out").exists()
        return
    assert code == 0
    (run_dir,) = (tmp / "out").iterdir()
    df = read_results(run_dir / "results.csv")
    meta = json.loads((run_dir / "run.json").read_text())
    assert sorted(df["config_id"]) == sorted(meta["suite"]["config_ids"])
    assert df["status"].isin(["ok", "unsupported", "error"]).all()


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


@pytest.mark.parametrize("argv, needle", [
    (["--suite", ""], "empty"),
    (["--threads", str(2**70)], "--threads"),
    (["--seed", str(2**63)], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--budget-s", "nan"], "--budget-s"),
    (["--ci-target", "2"], "--ci-target"),
])
def test_flags_beyond_their_bounds_exit_2_in_one_line(tmp_path, capsys, argv, needle):
    assert main(["run", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, needle", [
    ("rounds = 0.5", "rounds must be an integer in [1, 1000]"),
    ("rounds = 0", "rounds must be an integer in [1, 1000]"),
    ("rounds = 1e9", "rounds must be an integer"),
    ("budget_s = inf", "budget_s must be a number in (0, 3600]"),
    ("ci_target = true", "ci_target must be a number"),
])
def test_a_suites_settings_have_the_flags_bounds(tmp_path, capsys, text, needle):
    suite = tmp_path / "s.toml"
    suite.write_text(f"{text}\n[[matmul]]\nshapes = [[8, 8, 8]]\n")
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["3", "[1, 2]", "{ a = 1 }", "true"])
def test_a_model_name_that_is_not_text_exits_2(tmp_path, capsys, name):
    suite = tmp_path / "m.toml"
    suite.write_text(f"[[model]]\npreset = \"tiny\"\nname = {name}\n")
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "name must be a non-empty string" in err and "Traceback" not in err


def test_a_suite_that_is_a_fifo_or_a_directory_exits_2_without_reading(tmp_path, capsys):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)                           # reading it would block until a writer came
    for path in (fifo, tmp_path):
        assert main(["run", "--suite", str(path), "--out", str(tmp_path / "out")]) == 2
        assert "not a regular file" in capsys.readouterr().err


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

# Cheap: the pause (tests/running/paused_run.py), not the suite's length, puts the signal mid-block.
SLOW_SUITE = """
name = "interruptible"
budget_s = 0.05
min_window_s = 0.0
warmup_s = 0.0
ci_target = 0.5
rounds = 3
round_s = 0.01
span_s = 0          # one block per shape: the first block's rows are written while the second runs

[[matmul]]
shapes = [[64, 64, 64], [96, 96, 96]]
precisions = ["fp32", "fp64", "int8", "fp8_e4m3"]
"""


REPO = Path(__file__).resolve().parents[2]


def _start(args, cwd, pause: tuple[Path, int, int] | None = None):
    """`hwprof run ARGS` in a child process; with `pause` (marker, block, pass) it stops there and writes the
    marker (tests/running/paused_run.py), so that a signal sent after the marker lands mid-block."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    head = ["-m", "tests.running.paused_run", str(pause[0]), str(pause[1]), str(pause[2])] if pause else ["-m", "hwprof"]
    return subprocess.Popen([sys.executable, *head, "run", *args], cwd=REPO if pause else cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(marker: Path, proc: subprocess.Popen, limit_s: float = 600) -> None:
    """Until the paused child has written its marker (or has died, which fails the test); the limit only
    guards against a hang, nothing is decided by it."""
    t0 = time.monotonic()
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before its pause: {proc.communicate()[1][-2000:]}")
        if time.monotonic() - t0 > limit_s:
            proc.kill()
            raise AssertionError("the run never reached its pause")
        time.sleep(0.02)


COMMON = ["--energy", "none", "--quiet", "--no-report", "--quiet-check-s", "0", "--no-roofs", "--no-history"]


def _kept_rounds(run_dir: Path) -> dict[str, int]:
    """Per configuration, the kept rounds rounds.jsonl holds windows of."""
    out: dict[str, int] = {}
    for line in (run_dir / "rounds.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "round" and rec["kept"]:
            for cid in {w["id"] for w in rec["windows"]}:
                out[cid] = out.get(cid, 0) + 1
    return out


def _interrupt(tmp_path, sig, block, pass_):
    suite = tmp_path / "s.toml"
    suite.write_text(SLOW_SUITE)
    out, marker = tmp_path / "out", tmp_path / "paused"
    proc = _start(["--suite", str(suite), "--out", str(out), *COMMON], tmp_path, pause=(marker, block, pass_))
    _wait_for(marker, proc)
    (run_dir,) = out.iterdir()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    return run_dir, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_block_keeps_its_rounds_and_the_resume_measures_only_what_is_owed(tmp_path, sig):
    run_dir, err = _interrupt(tmp_path, sig, block=1, pass_=1)
    assert read_results(run_dir / "results.csv").empty                 # block 1's rows were not due yet...
    kept = _kept_rounds(run_dir)
    assert kept and all(n >= 1 for n in kept.values())                  # ... but its rounds are on disk
    assert "0 rows written, and " in err and "rounds of" in err
    done = _start(["--resume", str(run_dir), *COMMON], tmp_path)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    final = read_results(run_dir / "results.csv").set_index("config_id")
    meta = json.loads((run_dir / "run.json").read_text())
    assert sorted(final.index) == sorted(meta["suite"]["config_ids"]) and final.index.is_unique
    after = _kept_rounds(run_dir)
    for cid in kept:                                                    # its earlier rounds counted, not redone
        if cid in final.index and final.loc[cid, "status"] == "ok" and "/fp32/" not in cid:
            assert after[cid] == final.loc[cid, "rounds"], cid
    assert meta["status"] == "complete"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume_gives_the_uninterrupted_set(tmp_path, sig):
    run_dir, _ = _interrupt(tmp_path, sig, block=2, pass_=1)
    partial = read_results(run_dir / "results.csv")              # a valid CSV of complete rows: block 1's
    assert len(partial) == 4 and partial["status"].isin(["ok", "unsupported", "error"]).all()
    meta = json.loads((run_dir / "run.json").read_text())
    done = _start(["--resume", str(run_dir), *COMMON], tmp_path)
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


def test_resumed_rows_keep_the_reference_and_the_original_settings(tmp_path, tiny_suite):
    """Interrupt after the references, resume with no options: the resumed rows' hef is against the
    reference measured before the interruption, time accumulates, and the original overrides hold."""
    import torch
    from hwprof.running.runner import execute
    from hwprof.running.session import RunOptions
    base = dict(energy="none", idle_s=0.0, device_warmup_s=0.0, quiet_check_s=0.0)
    first = execute(RunOptions(suite=str(tiny_suite), out_dir=tmp_path, budget_s=0.07, seed=5, threads=1, **base))
    run_dir = first.run_dir
    ref_id = "matmul/64x64x64/fp32/dense/fwd"
    lines = (run_dir / "results.csv").read_text().splitlines(keepends=True)
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.startswith((ref_id, "attention/1x2x32x32x16/fp32/causal/math"))]
    (run_dir / "results.csv").write_text("".join(kept))
    meta = json.loads((run_dir / "run.json").read_text())
    meta["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(meta))
    before = read_results(run_dir / "results.csv").set_index("config_id")

    threads_now = torch.get_num_threads()
    resumed = execute(RunOptions(resume=run_dir, **base))
    df = resumed.results.set_index("config_id")
    ref_t = before.loc[ref_id, "time_s_median"]
    assert df.loc[ref_id, "time_s_median"] == ref_t                       # not re-measured
    fp64 = df.loc["matmul/64x64x64/fp64/dense/fwd"]
    # hef of a resumed row is paired with its reference realisation again (rounds interleaved), gated on the
    # reference row kept from before the interruption; it agrees with the ratio of the two rows' times
    assert fp64["hef_time_ci_low"] <= fp64["hef_time"] <= fp64["hef_time_ci_high"]
    assert 0.25 < fp64["hef_time"] / (ref_t / fp64["time_s_median"]) < 4       # the same quantity, measured apart
    assert fp64["doublings_time"] == pytest.approx(__import__("math").log2(fp64["hef_time"]), abs=1e-12)
    m = resumed.meta
    assert m["status"] == "complete" and len(m["resumed"]) == 1
    assert m["wall_s"] > meta["wall_s"] and m["measured_s"] > meta["measured_s"]
    assert m["suite"]["budget_s"] == 0.07 and m["policy"]["budget_s"] == 0.07    # the original override
    assert m["seed"] == 5 and m["threads"] == 1                                   # kept, not defaulted
    assert torch.get_num_threads() == threads_now
