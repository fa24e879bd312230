"""A fleet task without Ray: a retry resumes the run directory its dead attempt left on the node."""
import json
import tempfile

from hwprof.compat import tomllib
from hwprof.running.fleet_task import TaskSpec, earlier_attempt, run_task, task_out_dir, work_dir_name
from hwprof.running.results import read_results
from hwprof.running.runner import execute
from hwprof.running.session import RunOptions
from tests.conftest import TINY_SUITE

FAST = {"energy": "none", "quiet_check_s": 0.0, "roofs": False, "baseline": False, "idle_s": 0.0,
        "device_warmup_s": 0.0}


def test_a_retry_resumes_the_dead_attempts_directory_and_sends_what_it_had_not(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))          # the node's temporary directory
    data = tomllib.loads(TINY_SUITE)
    spec = TaskSpec("node n1", "n1", "cpu", "tiny", data, dict(FAST), work_dir=work_dir_name("fleet-run", "node n1"))
    out = task_out_dir(spec)
    assert out == task_out_dir(spec) and str(out).startswith(str(tmp_path))       # every attempt: one place
    # the dead attempt: it measured everything but only its first two rows reached results.csv
    execute(RunOptions(suite="tiny", suite_data=data, out_dir=out, device="cpu", **FAST))
    first = earlier_attempt(out)
    lines = (first / "results.csv").read_text().splitlines(keepends=True)
    (first / "results.csv").write_text("".join(lines[:3]))
    meta = json.loads((first / "run.json").read_text())
    (first / "run.json").write_text(json.dumps({**meta, "status": "running"}))
    kept = read_results(first / "results.csv").set_index("config_id")["time_s_median"]

    items = list(run_task(spec))
    rows = [payload for kind, payload in items if kind == "row"]
    ids = [r["config_id"] for r in rows]
    assert sorted(ids) == sorted(meta["suite"]["config_ids"]) and len(set(ids)) == len(ids)
    assert ids[:2] == list(kept.index)                               # sent first, as they were measured
    assert [r["time_s_median"] for r in rows[:2]] == list(kept.values)
    end = next(payload for kind, payload in items if kind == "end")
    assert end["resumed"] and not out.exists()                       # done: the node keeps nothing
