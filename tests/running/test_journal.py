"""rounds.jsonl: what a family measured, replayed into the same state; read strictly."""
import json

import pytest

from hwprof.measuring.meters.base import NoMeter
from hwprof.measuring.rounds import Arm, Family
from hwprof.running import journal
from tests.measuring.conftest import clock  # noqa: F401  (the fake clock fixture)
from tests.measuring.test_rounds_clock import P, SideTimer

REF = lambda: (0.5, 2.0)          # noqa: E731
FAST = lambda: (0.125, 1.0)       # noqa: E731
SLOW = lambda: (1.0, 1.0)         # noqa: E731


def _family(clock, log=None, jr=None):
    timer = SideTimer(clock)
    arms = [Arm(FAST, key="a"), Arm(SLOW, key="b")]
    ref = Arm(REF, key="r")
    f = Family(arms, ref, timer, NoMeter(), P(rounds=3, budget_s=0.0))
    if jr is not None:
        f.on_round = lambda windows, load, busy, slow: jr.round("r", windows, load, busy, slow)
    return f, arms, ref


def test_a_replayed_family_ends_in_the_state_measuring_left(clock, tmp_path):
    jr = journal.Journal(tmp_path, "suite-1")
    f, arms, ref = _family(clock, jr=jr)
    f.round()
    f.round()
    jr.close()
    rec = journal.read(tmp_path, "suite-1", {"a", "b", "r"})
    assert rec.rejected == 0 and len(rec.rounds["r"]) == 2 and rec.kept == 2
    g, garms, gref = _family(clock)
    by_key = {a.key: a for a in g.arms}
    from hwprof.measuring.arm import Window
    for r in rec.rounds["r"]:
        g.replay([Window(by_key[w["id"]], w["samples"], w["calls"], w["wall"], journal.window_joules(w["joules"]),
                         w["recorded"]) for w in r["windows"]], None, r["busy"], r["slow"])
    for a, b in zip(arms + [ref], garms + [gref]):
        assert (a.side, a.ratios, a.cost_s, a.done, a.discarded) == (b.side, b.ratios, b.cost_s, b.done, b.discarded)
    assert g.attempts == f.attempts and g.sampled_s == pytest.approx(f.sampled_s)
    f.on_round = lambda *record: None
    f.round()
    g.round()                                    # and the next round goes on from there, the same way
    assert [a.side.round_medians for a in arms] == [a.side.round_medians for a in garms]


def test_torn_garbage_and_foreign_lines_are_set_aside_and_said(tmp_path):
    jr = journal.Journal(tmp_path, "suite-1")
    jr._write({"type": "sensors", "family": "r", "which": "before", "values": {"clock_mhz": 2600.0}})
    jr.close()
    with open(tmp_path / journal.FILE, "a") as fh:
        fh.write('{"type": "round", "family": "r", "kept": true}\n')        # not whole
        fh.write("garbage\n")
        fh.write(json.dumps({"type": "sensors", "family": "zz", "which": "before", "values": {}}) + "\n")
        fh.write('{"type": "sensors", "family": "r", "wh')                  # torn by a kill
    rec = journal.read(tmp_path, "suite-1", {"r"})
    assert rec.rejected == 4 and rec.sensors[("r", "before")] == {"clock_mhz": 2600.0}
    assert len((tmp_path / journal.REJECTED).read_text().splitlines()) == 4
    assert journal.read(tmp_path, "suite-1", {"r"}).rejected == 0          # what was kept reads clean now


def test_a_journal_of_another_suite_is_set_aside_whole(tmp_path):
    jr = journal.Journal(tmp_path, "suite-1")
    jr._write({"type": "sensors", "family": "r", "which": "before", "values": {}})
    jr.close()
    rec = journal.read(tmp_path, "suite-2", {"r"})
    assert rec.rejected == 2 and not rec.sensors


def test_nan_joules_stay_nan_and_unmetered_stay_none():
    assert journal._joules(float("nan")) == "nan" and journal.window_joules("nan") != journal.window_joules("nan")
    assert journal._joules(None) is None and journal.window_joules(None) is None and journal.window_joules(1.5) == 1.5


def test_a_warmed_arms_warm_ups_are_journaled_and_replayed_into_its_cost(clock, tmp_path):
    jr = journal.Journal(tmp_path, "suite-1")
    f, arms, ref = _family(clock, jr=jr)
    arms[1].warm_each_round = True                        # a step's warm-up before each of its windows
    f.round()
    jr.close()
    rec = journal.read(tmp_path, "suite-1", {"a", "b", "r"})
    warm = {w["id"]: w["warm_s"] for w in rec.rounds["r"][0]["windows"]}
    assert warm["b"] == 1.0 and warm["a"] == 0.0 and rec.rejected == 0
    g, garms, gref = _family(clock)
    by_key = {a.key: a for a in g.arms}
    from hwprof.measuring.arm import Window
    for r in rec.rounds["r"]:
        g.replay([Window(by_key[w["id"]], w["samples"], w["calls"], w["wall"], journal.window_joules(w["joules"]),
                         w["recorded"], w["warm_s"]) for w in r["windows"]], None, r["busy"], r["slow"])
    assert [a.cost_s for a in garms] == [a.cost_s for a in arms]
    h, harms, _ = _family(clock)
    by_key = {a.key: a for a in h.arms}
    for r in rec.rounds["r"]:                              # the same round with its warm-up left out
        h.replay([Window(by_key[w["id"]], w["samples"], w["calls"], w["wall"], journal.window_joules(w["joules"]),
                         w["recorded"]) for w in r["windows"]], None, r["busy"], r["slow"])
    assert garms[1].cost_s - harms[1].cost_s == pytest.approx(1.0) and garms[0].cost_s == harms[0].cost_s
    older = dict(rec.rounds["r"][0], windows=[{k: v for k, v in w.items() if k != "warm_s"}
                                              for w in rec.rounds["r"][0]["windows"]])
    assert all(journal._window_ok(w) for w in older["windows"])   # a journal from before warm-ups still reads


def test_kept_rounds_reads_a_finished_journal_without_setting_anything_aside(tmp_path):
    from hwprof.running.journal import FILE, REJECTED, kept_rounds
    window = {"id": "a", "samples": [1e-3], "calls": 1, "wall": 0.1}
    lines = [json.dumps({"type": "journal", "v": 1, "suite": "s"}),
             json.dumps({"type": "round", "family": "a", "kept": True, "busy": False, "slow": False, "windows": [window]}),
             json.dumps({"type": "round", "family": "a", "kept": False, "busy": True, "slow": False, "windows": [window]}),
             "{torn", json.dumps({"type": "round", "family": "a", "kept": True, "windows": [{"id": "a"}]})]
    (tmp_path / FILE).write_text("\n".join(lines) + "\n")
    before = (tmp_path / FILE).read_text()
    assert [len(r["windows"]) for r in kept_rounds(tmp_path)["a"]] == [1]    # the kept, whole one only
    assert (tmp_path / FILE).read_text() == before and not (tmp_path / REJECTED).exists()
    assert kept_rounds(tmp_path / "absent") == {}
