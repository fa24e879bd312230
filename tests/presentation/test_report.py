import base64
import re
from pathlib import Path

import pytest

import hwprof
from hwprof.presentation.cli import main
from hwprof.analysis.compare import compare_runs
from hwprof.presentation.report import render_report

HOSTILE = """
name = "<script>alert('x')</script> | pipe"
budget_s = 0.05
ci_target = 0.5
warmup_s = 0.0
min_window_s = 0.0
rounds = 7
round_s = 0.0

[[matmul]]
shapes = [[64, 64, 64]]
precisions = ["fp32", "fp64", "fp8_e4m3"]
sparsity = ["dense", "unstructured:0.5", "unstructured:0.1"]
"""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rep")
    (tmp / "s.toml").write_text(HOSTILE)
    dirs = []
    for _ in range(2):
        df = hwprof.run_suite(str(tmp / "s.toml"), out_dir=tmp / "r", energy="estimate", idle_s=0.0, quiet_check_s=0.0,
                                device_warmup_s=0.0)
        dirs.append(Path(df.attrs["run_dir"]))
    return dirs


def test_html_report_is_self_contained_and_escapes_user_strings(two_runs):
    paths = render_report(two_runs[0])
    html = (two_runs[0] / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert html.count("<script>") == 1                     # only the table sorter
    assert "http://" not in html and "https://" not in html  # opens without a network
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(imgs) >= 3
    for data in imgs:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count("<tr class=") == 3 * 3                # one table row per configuration
    assert "ESTIMATED" in html                               # an estimate is said to be one
    for name in ("hef.png", "roofline.png", "accuracy.png", "sparsity.png"):
        p = two_runs[0] / "plots" / name
        assert p in paths and p.stat().st_size > 5000


def test_markdown_report(two_runs):
    md = (two_runs[0] / "report.md").read_text()
    assert "![" in md and "(plots/hef.png)" in md
    assert "&lt;script&gt;" in md and "\\| pipe" in md
    assert "| config_id" in md and "matmul/64x64x64/fp32/unstructured:0.1/fwd" in md
    assert "Break-even unstructured fp32 64x64x64" in md


def test_compare_two_runs_of_the_same_suite(two_runs, capsys):
    table = compare_runs(*two_runs).table
    ok = table[(table.status_a == "ok") & (table.status_b == "ok")]
    assert len(table) == 9 and len(ok) == 7
    assert ok["logical_flops_per_s_ratio"].between(0.2, 5).all()
    assert ok["time_s_median_ratio"].notna().all() and set(ok["significant"]) <= {True, False}
    assert main(["compare", str(two_runs[0]), str(two_runs[1])]) == 0
    out = capsys.readouterr().out
    assert "compare.csv" in out and (two_runs[1] / "compare.md").read_text().count("\n") > 9


def test_compare_and_report_reject_non_runs(tmp_path, two_runs, capsys):
    assert main(["compare", str(tmp_path), str(two_runs[0])]) == 2
    assert "not a hwprof run directory" in capsys.readouterr().err
    (tmp_path / "run.json").write_text('{"tool": "hwprof", "schema_version": 99}')
    (tmp_path / "results.csv").write_text("x\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "upgrade hwprof" in capsys.readouterr().err


def test_findings_name_rows_that_ran_at_two_speeds(two_runs):
    from hwprof.presentation.report import findings
    from hwprof.running.results import read_results
    from hwprof.running.rundir import read_run_json
    df, meta = read_results(two_runs[0] / "results.csv"), read_run_json(two_runs[0])
    # a real run on a noisy host may itself split into two speeds: start from rows that did not
    df["flags"] = [",".join(f for f in str(v).split(",") if f and f != "bimodal") for v in df["flags"]]
    assert not any("two speeds" in line for line in findings(df, meta))
    cid = "matmul/64x64x64/fp64/dense/fwd"
    df.loc[df["config_id"] == cid, "flags"] = "bimodal,estimate"
    [line] = [line for line in findings(df, meta) if "two speeds" in line]
    assert line.startswith("1 rows ran at two speeds") and "gap of 15% or more" in line and cid in line


def test_the_report_names_the_precisions_held_to_a_wider_roof_and_only_those_with_a_kernel():
    from hwprof.presentation.report import machine_lines
    memory = {"bytes_per_s": 2e10, "method": "triad"}
    compute = {"fp32": {"flops_per_s": 1.26e11, "shape": "a"}, "bf16": {"flops_per_s": 1.33e9, "shape": "b"},
               "tf32": {"flops_per_s": None, "shape": "", "reason": "no kernel"}}
    lines = machine_lines({"roofs": {"memory": memory, "compute": compute, "measured": "2026-12-02"}})
    [held] = [line for line in lines if line.startswith("Held to")]
    assert "bf16 rows to the fp32 roof 126 GFLOP/s" in held and "tf32" not in held
    amx = {"fp32": {"flops_per_s": 1e11, "shape": "a"}, "bf16": {"flops_per_s": 3e11, "shape": "b"}}
    assert not [line for line in machine_lines({"roofs": {"memory": memory, "compute": amx, "measured": "x"}})
                if line.startswith("Held to")]


def test_the_report_names_unexplained_steps_and_says_which_are_also_noisy():
    import pandas as pd

    from hwprof.presentation.sections import _unexplained
    models = pd.DataFrame([
        {"model": "tiny", "phase": "decode", "precision": "bf16", "unexplained_share": 0.24, "flags": "noisy,unexplained"},
        {"model": "tiny", "phase": "prefill", "precision": "bf16", "unexplained_share": -0.18, "flags": "unexplained"},
        {"model": "tiny", "phase": "prefill", "precision": "fp32", "unexplained_share": 0.05, "flags": "noisy"},
    ])
    words = _unexplained(models)
    assert "tiny decode bf16 +24%; tiny prefill bf16 -18%" in words and "fp32" not in words
    assert "1 of them are also noisy" in words
    assert _unexplained(models.iloc[2:]) == ""
