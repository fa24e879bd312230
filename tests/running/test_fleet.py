"""Fleet runs on a local Ray instance with two logical nodes (started once for the whole test session, on
this machine only): a full run, a task that dies keeping the rows it sent, and resume."""
import importlib.util

import pytest

from hwprof.errors import BadInput

pytestmark = [pytest.mark.fleet,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray (pip install -e '.[fleet]')")]

SUITE = """
name = "fleet-tiny"
budget_s = 0.05
ci_target = 0.5
warmup_s = 0.0
min_window_s = 0.0
rounds = 3
round_s = 0.0

[[matmul]]
shapes = [[64, 64, 64]]
precisions = ["fp32", "bf16", "tf32"]
"""


@pytest.fixture(scope="session")
def local_ray():
    import ray
    ray.init(address="local", num_cpus=2, resources={"hwprof_node_0": 1, "hwprof_node_1": 1},
             include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def fleet_opts(tmp_path, local_ray):
    from hwprof.running.fleet import FleetOptions
    suite = tmp_path / "fleet.toml"
    suite.write_text(SUITE)

    def make(**kw):
        return FleetOptions(**({"suite": str(suite), "address": "local", "local_nodes": 2, "out_dir": tmp_path / "runs",
                                "run_kwargs": {"energy": "estimate", "quiet_check_s": 0.0, "roofs": False,
                                               "idle_s": 0.0, "device_warmup_s": 0.0}} | kw))
    return make


def test_a_fleet_run_has_one_row_per_node_and_configuration(fleet_opts):
    from hwprof.running.fleet import run_fleet
    run_dir, df, meta = run_fleet(fleet_opts())
    assert len(df) == 2 * 3 and set(df.groupby("device_uuid").size()) == {3}
    assert df["host"].ne("").all() and df["node_id"].str.endswith(("local-0", "local-1")).all()
    assert sorted(df["device_uuid"].unique())[0].startswith("cpu:") and df["device_uuid"].str.contains("#local-").all()
    by = df.set_index(["device_uuid", "config_id"])["status"]
    assert set(by.xs("matmul/64x64x64/tf32/dense/fwd", level=1)) == {"unsupported"}
    assert set(by.xs("matmul/64x64x64/fp32/dense/fwd", level=1)) == {"ok"}
    assert meta["fleet"]["local_nodes"] == 2 and len(meta["nodes"]) == 2 and meta["status"] == "complete"
    assert all("run" in n and n["run"]["threads"] for n in meta["nodes"].values())

    from hwprof.analysis import fleet
    spread = {s.config_id: s for s in fleet.spread(df, meta)}
    assert spread["matmul/64x64x64/fp32/dense/fwd"].devices == 2
    from hwprof.presentation.report import render_report
    render_report(run_dir)
    md = (run_dir / "report.md").read_text()
    assert "## Fleet" in md and "noise floor" in md and (run_dir / "plots" / "fleet.png").exists()

    from hwprof.analysis.compare import compare_runs
    table = compare_runs(run_dir, run_dir).table
    assert len(table) == 6 and (table["time_s_median_ratio"].dropna() == 1.0).all()


def test_a_task_that_dies_keeps_its_rows_and_resume_measures_only_the_rest(fleet_opts):
    from hwprof.running.fleet import ENDED, run_fleet
    run_dir, df, _ = run_fleet(fleet_opts(retries=0, fail_after_rows={"node local-0": 1}))
    dead = df[df["node_id"].str.endswith("local-0")]
    assert len(df) == 6 and (dead["status"] == "ok").sum() == 1
    lost = dead[dead["status"] == "error"]
    assert len(lost) == 2 and lost["reason"].str.startswith(ENDED).all()
    assert (df[df["node_id"].str.endswith("local-1")]["status"] != "error").all()
    kept = dead[dead["status"] == "ok"].iloc[0]

    _, again, meta = run_fleet(fleet_opts(resume=run_dir))
    assert len(again) == 6 and not (again["status"] == "error").any() and meta["resumed"]
    same = again[(again["device_uuid"] == kept["device_uuid"]) & (again["config_id"] == kept["config_id"])]
    assert len(same) == 1 and same.iloc[0]["time_s_median"] == kept["time_s_median"]     # not measured again


def test_a_dead_task_is_retried_for_what_it_had_left(fleet_opts):
    from hwprof.running.fleet import run_fleet
    _, df, _ = run_fleet(fleet_opts(retries=1, fail_after_rows={"node local-1": 2}))
    # the retry dies after two more rows too, but by then only one configuration was left: all measured
    assert len(df) == 6 and not (df["status"] == "error").any()


def test_without_ray_fleet_is_exit_2_with_the_install_command(monkeypatch, capsys, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "ray", None)
    from hwprof.presentation.cli import main
    assert main(["fleet", "--address", "local", "--local-nodes", "2", "--out", str(tmp_path)]) == 2
    assert "pip install" in capsys.readouterr().err


def test_logical_nodes_need_a_local_instance(local_ray):
    from hwprof.running.fleet import connect
    with pytest.raises(BadInput, match="local instance"):
        connect(local_ray, "10.0.0.1:6379", 2)


def test_hwprof_fleet_from_the_command_line(local_ray, tmp_path, capsys):
    from hwprof.presentation.cli import main
    suite = tmp_path / "fleet.toml"
    suite.write_text(SUITE)
    out = tmp_path / "runs"
    assert main(["fleet", "--address", "local", "--local-nodes", "2", "--suite", str(suite), "--out", str(out),
                 "--energy", "estimate", "--quiet-check-s", "0", "--no-roofs"]) == 0
    printed = capsys.readouterr().out
    assert "fleet: 2 tasks, 6 rows (4 ok, 2 unsupported, 0 error)" in printed
    run_dir = next(out.iterdir())
    assert "## Fleet outliers" in (run_dir / "report.md").read_text()
    assert main(["fleet", "--address", "local", "--per", "rack", "--out", str(out)]) == 2
