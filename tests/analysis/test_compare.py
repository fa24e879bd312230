"""compare on synthetic run directories: ratio direction, significance from the intervals, unlike runs."""
import pandas as pd
import pytest

from hwprof.analysis.compare import compare_runs, unlike_conditions, write_comparison
from hwprof.errors import BadInput
from hwprof.presentation.cli import main
from hwprof.running.results import SCHEMA_VERSION, ResultsWriter, Row
from hwprof.running.rundir import write_json

META = {"tool": "hwprof", "schema_version": SCHEMA_VERSION, "energy": {"source": "rapl"}, "threads": 2,
        "torch": "2.13.0+cpu", "device": "cpu", "device_description": {"name": "Test CPU"}}


def _row(cid, t, lo, hi, status="ok", energy_source="rapl", hef=(1.0, 1.0, 1.0)):
    return Row(config_id=cid, kernel="matmul", shape="8x8x8", precision="fp32", sparsity="dense", density=1.0,
               backend="default", pass_="fwd", device="cpu", status=status, logical_flops=1024,
               time_s_median=t, time_s_ci_low=lo, time_s_ci_high=hi, energy_j=t * 10, energy_source=energy_source,
               logical_flops_per_s=1024 / t, logical_flops_per_j=1024 / (t * 10), hef_time=hef[0],
               hef_time_ci_low=hef[1], hef_time_ci_high=hef[2])


def _run(path, rows, **meta):
    path.mkdir()
    w = ResultsWriter(path / "results.csv")
    for r in rows:
        w.append(r)
    w.close()
    write_json(path / "run.json", {**META, **meta})
    return path


def test_ratio_direction_and_significance(tmp_path):
    a = _run(tmp_path / "a", [_row("slow", 1.0, 0.98, 1.02), _row("same", 1.0, 0.95, 1.05), _row("fast", 1.0, 0.99, 1.01),
                              _row("only-a", 1.0, 0.9, 1.1)])
    b = _run(tmp_path / "b", [_row("slow", 2.0, 1.9, 2.1),        # disjoint: B is 2x slower
                              _row("same", 1.02, 1.0, 1.04),      # overlapping: not significant
                              _row("fast", 0.5, 0.49, 0.51),      # disjoint the other way
                              _row("only-b", 1.0, 0.9, 1.1)])
    t = compare_runs(a, b).table.set_index("config_id")
    assert list(t.index) == ["slow", "same", "fast"]
    assert t.loc["slow", "time_s_median_ratio"] == pytest.approx(2.0)           # B / A
    assert t.loc["slow", "logical_flops_per_s_ratio"] == pytest.approx(0.5)
    assert t.loc["fast", "time_s_median_ratio"] == pytest.approx(0.5)
    assert bool(t.loc["slow", "significant"]) and bool(t.loc["fast", "significant"])
    assert not bool(t.loc["same", "significant"]) and bool(t.loc["same", "time_ci_overlap"])


def test_touching_intervals_are_not_significant_and_failed_rows_never_are(tmp_path):
    a = _run(tmp_path / "a", [_row("x", 1.0, 0.9, 1.1), _row("e", 1.0, 0.9, 1.1)])
    b = _run(tmp_path / "b", [_row("x", 1.2, 1.1, 1.3), _row("e", 5.0, 4.9, 5.1, status="error")])
    t = compare_runs(a, b).table.set_index("config_id")
    assert not bool(t.loc["x", "significant"])
    assert not bool(t.loc["e", "significant"]) and pd.isna(t.loc["e", "time_ci_overlap"])


@pytest.mark.parametrize("change,needle", [({"energy": {"source": "estimate"}}, "energy meter"),
                                           ({"threads": 8}, "threads"), ({"torch": "2.4.0"}, "torch"),
                                           ({"device": "cuda:0"}, "device")])
def test_unlike_runs_are_refused_unless_accepted_and_then_said(tmp_path, change, needle, capsys):
    a = _run(tmp_path / "a", [_row("x", 1.0, 0.9, 1.1)])
    b = _run(tmp_path / "b", [_row("x", 1.0, 0.9, 1.1)], **change)
    assert unlike_conditions(META, {**META, **change})
    with pytest.raises(BadInput, match=needle):
        compare_runs(a, b)
    assert main(["compare", str(a), str(b)]) == 2
    assert main(["compare", str(a), str(b), "--allow-unlike"]) == 0
    assert "different conditions" in (b / "compare.md").read_text()


def test_estimated_energy_is_labelled_in_compare_outputs(tmp_path):
    est = {"energy": {"source": "estimate"}}
    a = _run(tmp_path / "a", [_row("x", 1.0, 0.9, 1.1, energy_source="estimate")], **est)
    b = _run(tmp_path / "b", [_row("x", 1.0, 0.9, 1.1, energy_source="estimate")], **est)
    cmp = compare_runs(a, b)
    assert cmp.table.loc[0, "energy_source_a"] == "estimate" and bool(cmp.table.loc[0, "energy_estimated"])
    write_comparison(cmp, b, a, b)
    assert "ESTIMATED" in (b / "compare.md").read_text()
    assert "energy_source_b" in (b / "compare.csv").read_text()


def test_hef_differences_are_significant_only_beyond_both_runs_intervals(tmp_path):
    a = _run(tmp_path / "a", [_row("x", 1.0, 0.9, 1.1, hef=(2.0, 1.9, 2.1)), _row("y", 1.0, 0.9, 1.1, hef=(2.0, 1.8, 2.2))])
    b = _run(tmp_path / "b", [_row("x", 1.0, 0.9, 1.1, hef=(2.5, 2.3, 2.7)), _row("y", 1.0, 0.9, 1.1, hef=(2.1, 2.0, 2.3))])
    t = compare_runs(a, b).table.set_index("config_id")
    assert bool(t.loc["x", "hef_time_significant"]) and not bool(t.loc["y", "hef_time_significant"])
    assert t.loc["x", "hef_time_ratio"] == pytest.approx(1.25)


def test_unlike_conditions_name_what_differed_in_words():
    assert unlike_conditions(META, META) == []
    assert unlike_conditions(META, {**META, "threads": 8}) == ["threads: 2 vs 8"]
    assert unlike_conditions(META, {**META, "energy": {"source": "estimate"}}) == ["energy meter: rapl vs estimate"]
    assert unlike_conditions(META, {**META, "torch": "2.4.0"}) == ["torch: 2.13.0+cpu vs 2.4.0"]
    assert unlike_conditions(META, {**META, "device_description": {"name": "Other CPU"}}) == \
        ["device: cpu (Test CPU) vs cpu (Other CPU)"]
    bare = {k: v for k, v in META.items() if k != "device_description"}
    assert unlike_conditions(bare, bare) == [] and unlike_conditions(META, bare) == ["device: cpu (Test CPU) vs cpu (?)"]


def test_written_comparison_says_everything_it_should(tmp_path):
    est = {"energy": {"source": "estimate"}}
    a = _run(tmp_path / "a", [_row("x", 1.0, 0.9, 1.1, energy_source="estimate")], **est)
    b = _run(tmp_path / "b", [_row("x", 2.0, 1.9, 2.1, energy_source="estimate")], threads=4, **est)
    cmp = compare_runs(a, b, allow_unlike=True)
    csv_path, md_path = write_comparison(cmp, b, a, b)
    lines = md_path.read_text().splitlines()
    assert lines[:6] == ["# hwprof compare", "", f"A: `{a}`", "", f"B: `{b}`", ""]
    assert lines[6] == ("Ratios are B / A. `significant`: the intervals of the two median times (over rounds) do not "
                        "overlap; `hef_time_significant`: the two hef_time intervals over paired rounds do not overlap.")
    assert lines[8] == ("**The runs were measured under different conditions**, so ratios include those differences: "
                        "threads: 2 vs 4.")
    assert lines[10] == ("**FLOP/J ratios involve an ESTIMATED energy** (TDP x CPU utilisation, not a measurement) "
                         "where an energy_source is `estimate`.")
    table = "\n".join(lines[12:])
    header, _, row = table.splitlines()[:3]
    assert header.split("|")[1].strip() == "config_id" and row.split("|")[1].strip() == "x"
    assert float(row.split("|")[4]) == 2.0                      # time ratio B/A, in the markdown too
    csv = pd.read_csv(csv_path)
    assert csv.loc[0, "time_s_median_ratio"] == 2.0 and csv.loc[0, "time_s_median_a"] == 1.0
    assert csv.loc[0, "time_s_median_b"] == 2.0 and bool(csv.loc[0, "significant"])
    with pytest.raises(BadInput, match=r"^output directory .*: not a directory$"):
        write_comparison(cmp, tmp_path / "absent", a, b)


def test_refusals_are_worded_for_people(tmp_path):
    a = _run(tmp_path / "a", [_row("x", 1.0, 0.9, 1.1)])
    b = _run(tmp_path / "b", [_row("y", 1.0, 0.9, 1.1)])
    with pytest.raises(BadInput, match=r"^.*/a and .*/b have no configuration in common \(config_id\)$"):
        compare_runs(a, b)
    c = _run(tmp_path / "c", [_row("x", 1.0, 0.9, 1.1)], threads=8)
    with pytest.raises(BadInput, match=r"^.*/a and .*/c were measured under different conditions \(threads: 2 vs 8\); "
                                       r"their ratios would mix those differences in - compare alike runs, or accept "
                                       r"it explicitly$"):
        compare_runs(a, c)


def test_ratio_and_interval_edge_cases():
    from hwprof.analysis.compare import _disjoint, _ratio
    assert _ratio(2.0, 0.0) != _ratio(2.0, 0.0) and _ratio(float("nan"), 1.0) != _ratio(float("nan"), 1.0)
    assert _ratio("x", 1.0) != _ratio("x", 1.0) and _ratio(3.0, 2.0) == 1.5
    a = {"lo": 1.0, "hi": 2.0}
    assert _disjoint(a, {"lo": 2.5, "hi": 3.0}, "lo", "hi") and _disjoint({"lo": 2.5, "hi": 3.0}, a, "lo", "hi")
    assert not _disjoint(a, {"lo": 2.0, "hi": 3.0}, "lo", "hi")                     # touching is overlapping
    assert not _disjoint(a, {"lo": float("nan"), "hi": 3.0}, "lo", "hi")
    assert not _disjoint(a, {"lo": None, "hi": 3.0}, "lo", "hi")


def test_time_significance_needs_both_directions_checked(tmp_path):
    a = _run(tmp_path / "a", [_row("x", 2.0, 1.9, 2.1)])
    b = _run(tmp_path / "b", [_row("x", 1.0, 0.9, 1.1)])                              # B faster: A's low > B's high
    t = compare_runs(a, b).table
    assert bool(t.loc[0, "significant"]) and t.loc[0, "time_s_median_a"] == 2.0 and t.loc[0, "time_s_median_b"] == 1.0
