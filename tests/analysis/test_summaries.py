"""Summaries over a run: roof placement (which rows leave most on the table, and which roof binds them)."""
import math

import pandas as pd
import pytest

from hwprof.analysis.summaries import _crossing, above_roof, break_even, furthest_below_roof, rows_flagged

ROOFS = {"memory": {"bytes_per_s": 1e10}, "compute": {"fp32": {"flops_per_s": 2e11}, "bf16": {"flops_per_s": 4e11}}}


def _df(rows):
    return pd.DataFrame([dict(status="ok", **r) for r in rows])


def test_the_rows_furthest_below_their_roof_and_what_binds_them():
    df = _df([
        dict(config_id="a", precision="fp32", roof_frac=0.9, roof_flops_per_s=2e11, physical_flops_per_s=1.8e11),
        dict(config_id="b", precision="fp32", roof_frac=0.1, roof_flops_per_s=5e10, physical_flops_per_s=5e9),
        dict(config_id="c", precision="w8a16", roof_frac=0.2, roof_flops_per_s=4e11, physical_flops_per_s=8e10),
        dict(config_id="d", precision="bf16", roof_frac=0.5, roof_flops_per_s=4e11, physical_flops_per_s=2e11),
    ])
    below = furthest_below_roof(df, ROOFS, n=3)
    assert [(b.config_id, b.bound) for b in below] == [("b", "memory"), ("c", "compute"), ("d", "compute")]
    assert below[0].roof_frac == 0.1


def test_rows_above_their_roof_say_the_roof_was_measured_low():
    df = _df([dict(config_id="a", roof_frac=1.05), dict(config_id="b", roof_frac=1.06),
              dict(config_id="c", roof_frac=None)])
    assert above_roof(df) == ["b"]
    assert above_roof(df.drop(columns="roof_frac")) == [] and furthest_below_roof(df.drop(columns="roof_frac"), None) == []


def test_the_machine_state_sentence_says_what_the_history_found():
    from hwprof.analysis.summaries import machine_state
    df = _df([dict(config_id="a", flags="estimate,slow-machine"), dict(config_id="b", flags=None),
              dict(config_id="c", flags="slow-machines")])
    slow = machine_state(df, {"machine_history": {"runs": 5},
                              "machine_state": [{"slowdown": 0.02}, {"slowdown": 0.072}, {"slowdown": None}]})
    assert (slow.history_runs, slow.compared, slow.slow_rows, slow.slowdown) == (5, 2, 1, 0.072)
    assert "+7.2% against its quiet state" in slow.sentence() and "1 rows are flagged slow-machine" in slow.sentence()
    usual = machine_state(_df([dict(config_id="a", flags="")]), {"machine_history": {"runs": 5},
                                                                  "machine_state": [{"slowdown": -0.01}]})
    assert usual.sentence().startswith("This machine ran as usual") and "-1.0%" in usual.sentence()
    redone = machine_state(_df([dict(config_id="a", flags="")]), {"machine_history": {"runs": 5}, "contention":
                           {"slow_rounds": 4}, "machine_state": [{"slowdown": 0.01}]})
    assert redone.slow_rounds == 4 and "4 rounds whose reference ran 5% or more slower" in redone.sentence()
    assert "holds 2 earlier run(s)" in machine_state(df, {"machine_history": {"runs": 2}}).sentence()
    off = machine_state(_df([dict(config_id="a", flags="off-history"), dict(config_id="b", flags="")]),
                        {"machine_history": {"runs": 4}, "history_checks": {"compared_rows": 2, "off_history_rows": 1}})
    assert off.sentence() == ("1 of 2 rows compared with this machine's last runs have a hef interval outside "
                              "every earlier value (flagged off-history).")
    assert "turned off" in machine_state(df, {}).sentence()
    spread = machine_state(_df([dict(config_id="a", flags="", hef_time_run_sd=0.01),
                                dict(config_id="b", flags="", hef_time_run_sd=0.03),
                                dict(config_id="c", flags="", hef_time_run_sd=None)]),
                           {"machine_history": {"runs": 4}, "history_checks": {"compared_rows": 2}})
    assert (spread.widened, spread.run_sd) == (2, 0.02)
    assert spread.sentence().endswith("2 rows' hef intervals also cover how much their hef moved between this "
                                      "machine's last runs (median sd 2.0%).")
    energy = machine_state(_df([dict(config_id="a", flags="", hef_time_run_sd=0.01, hef_energy_run_sd=0.04)]),
                           {"machine_history": {"runs": 4}, "history_checks": {"compared_rows": 1}})
    assert energy.sentence().endswith("1 rows' hef_energy intervals likewise, by their last runs with the same "
                                      "meter (median sd 4.0%).")
    assert spread.energy_widened == 0 and "hef_energy" not in spread.sentence()


def test_break_even_interpolates_the_crossing_in_log_space_and_words_the_rest():
    def r(cid, sparsity, density, hef):
        return dict(config_id=cid, kernel="matmul", shape="512x512x512", precision="fp32", sparsity=sparsity,
                    density=density, hef_time=hef, flags="")
    df = _df([r("u50", "unstructured", 0.5, 0.5), r("u10", "unstructured", 0.0999985, 2.0),
              r("b25", "block:32", 0.25, 0.9), r("d", "dense", 1.0, 1.0)])
    by = {b.pattern: b for b in break_even(df)}
    assert set(by) == {"unstructured", "block:32"}                       # dense is the reference, not a pattern
    assert by["unstructured"].density == pytest.approx(math.exp((math.log(0.5) + math.log(0.0999985)) / 2))
    assert by["unstructured"].note == f"sparse faster below density {by['unstructured'].density:.3g}"
    assert (by["block:32"].density, by["block:32"].note) == (None, "dense faster at the one density measured (0.25)")
    assert _crossing([(0.5, 2.0), (0.0999985, 3.0)]) == (None, "sparse faster at every density measured "
                                                              "(0.5 down to 0.1)")
    assert _crossing([(0.5, 2.0), (0.1, 0.5)])[1].startswith("sparse faster above density")


def test_rows_flagged_matches_whole_flags_of_ok_rows():
    df = _df([dict(config_id="a", flags="bimodal,estimate"), dict(config_id="b", flags="not-bimodal"),
              dict(config_id="c", flags=None), dict(config_id="d", flags="bimodal")])
    df.loc[df["config_id"] == "d", "status"] = "error"
    assert rows_flagged(df, "bimodal") == ["a"]
