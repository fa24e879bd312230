"""What --resume trusts and refuses: results.csv read record by record, run.json against its schema, flags
that would change the method, a directory killed at any moment, a run still going."""
import json
import signal

import pytest

from hwprof.presentation.cli import main
from hwprof.running.results import read_results
from tests.running.test_reliability import COMMON, SLOW_SUITE, _start, _wait_for


@pytest.fixture
def finished(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(SLOW_SUITE)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), *COMMON]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    return run_dir


def _resume(run_dir, *extra):
    return main(["run", "--resume", str(run_dir), *COMMON, *extra])


def test_torn_garbage_duplicate_and_header_records_are_set_aside_and_measured_again(finished, capsys):
    path = finished / "results.csv"
    lines = path.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    torn = rows[2][: len(rows[2]) // 2] + "\n"                 # cut mid-row, yet ending in a newline
    path.write_text(header + rows[0] + rows[1] + torn + "this,is,garbage\n" + header + rows[0] + "".join(rows[3:]))
    capsys.readouterr()
    assert _resume(finished) == 0
    err = capsys.readouterr().err
    assert "set aside in results.rejected.csv" in err
    final = read_results(path)
    ids = json.loads((finished / "run.json").read_text())["suite"]["config_ids"]
    assert sorted(final["config_id"]) == sorted(ids) and final["config_id"].is_unique
    assert final["status"].isin(["ok", "unsupported", "error"]).all()
    rejected = (finished / "results.rejected.csv").read_text().splitlines()
    assert len(rejected) == 4                                   # the torn row, the garbage, the header, the repeat


@pytest.mark.parametrize("change,words", [
    (lambda m: m.pop("suite"), "suite is missing"),
    (lambda m: m["suite"].pop("raw"), "suite.raw is missing"),
    (lambda m: m["suite"].update(budget_s="abc"), "suite.budget_s = 'abc'"),
    (lambda m: m.update(seed=-1), "seed = -1"),
    (lambda m: m["suite"].update(config_ids=[1, 2]), "suite.config_ids"),
])
def test_a_run_json_that_is_not_hwprofs_is_refused_in_one_line(finished, capsys, change, words):
    meta_path = finished / "run.json"
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert _resume(finished) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags,words", [
    (["--threads", "1"], "threads"), (["--seed", "3"], "seed"), (["--budget-s", "0.5"], "budget_s"),
    (["--ci-target", "0.1"], "ci_target"), (["--energy", "estimate"], "energy"),
])
def test_a_flag_that_changes_the_method_is_refused_unless_it_matches(tmp_path, capsys, flags, words):
    suite = tmp_path / "s.toml"
    suite.write_text(SLOW_SUITE)
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "out"), "--seed", "7", "--threads", "2",
                 *COMMON]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    meta["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir), *COMMON[2:], *flags]) == 2   # COMMON without --energy none
    err = capsys.readouterr().err
    assert words in err and ("two methods" in err or "meter" in err)
    assert main(["run", "--resume", str(run_dir), *COMMON, "--seed", "7", "--threads", "2"]) == 0   # the same: fine


def test_a_resume_keeps_the_originals_roofs_and_history_choices(tiny_suite, tmp_path):
    from hwprof.running.session import RunOptions, close_session, open_session
    fast = dict(energy="none", idle_s=0.0, device_warmup_s=0.0, quiet_check_s=0.0)
    first = open_session(RunOptions(suite=str(tiny_suite), out_dir=tmp_path, roofs=False, baseline=False, **fast))
    close_session(first, "interrupted", 0.0)
    again = open_session(RunOptions(resume=first.run_dir, **fast))          # the flags not given again
    assert again.opts.roofs is False and again.opts.baseline is False
    close_session(again, "interrupted", 0.0)
    meta = json.loads((first.run_dir / "run.json").read_text())
    (first.run_dir / "run.json").write_text(json.dumps({**meta, "method_options": "garbage"}))
    third = open_session(RunOptions(resume=first.run_dir, **fast))          # unreadable: the flags as given
    assert third.opts.roofs is True
    close_session(third, "interrupted", 0.0)


def test_a_run_killed_the_moment_its_directory_appears_can_be_resumed(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(SLOW_SUITE)
    out = tmp_path / "out"
    proc = _start(["--suite", str(suite), "--out", str(out), *COMMON], tmp_path)
    import time
    t0 = time.monotonic()
    while not (out.exists() and any(p for p in out.iterdir() if not p.name.startswith("."))):
        assert proc.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    (run_dir,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert (run_dir / "run.json").exists() and (run_dir / "results.csv").exists()    # whole from the first moment
    assert _resume(run_dir) == 0
    assert len(read_results(run_dir / "results.csv")) == 8


def test_a_run_killed_mid_block_loses_at_most_its_pass_and_a_live_run_refuses_a_second_resume(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(SLOW_SUITE)
    out, marker = tmp_path / "out", tmp_path / "paused"
    proc = _start(["--suite", str(suite), "--out", str(out), *COMMON], tmp_path, pause=(marker, 1, 2))
    _wait_for(marker, proc)
    (run_dir,) = out.iterdir()
    capsys.readouterr()
    assert _resume(run_dir) == 2                                   # still being measured by the paused process
    assert "another hwprof process" in capsys.readouterr().err
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    kept = sum(1 for line in (run_dir / "rounds.jsonl").read_text().splitlines() if '"type":"round"' in line)
    assert kept >= 2                                               # two passes were on disk before the kill
    assert _resume(run_dir) == 0
    final = read_results(run_dir / "results.csv")
    assert len(final) == 8 and final["config_id"].is_unique
