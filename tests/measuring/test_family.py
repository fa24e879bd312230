"""Family: several configurations against one reference, round by round, on a fake clock."""
import pytest

from hwprof.measuring.contention import WindowLoad, combine_loads
from hwprof.measuring.meters.base import NoMeter
from hwprof.measuring.rounds import Arm, Family
from hwprof.measuring.stats import two_speeds
from tests.measuring.test_rounds_clock import P, SideTimer

REF = lambda: (0.5, 2.0)          # noqa: E731
FAST = lambda: (0.125, 1.0)       # noqa: E731   hef 4
SLOW = lambda: (1.0, 1.0)         # noqa: E731   hef 0.5


def family(clock, configs, reference=REF, probe=None, **policy):
    timer = SideTimer(clock)
    arms = [Arm(fn) for fn in configs]
    ref = Arm(reference) if reference is not None else None
    return Family(arms, ref, timer, NoMeter(), P(**policy), probe), timer, arms, ref


def run(f):
    while not f.done:
        f.round()
    f.finish()


def test_each_configuration_sits_beside_the_reference_and_the_order_reverses_every_round(clock):
    f, timer, (a, b), ref = family(clock, [FAST, SLOW], rounds=2, budget_s=0.0)
    run(f)
    seen = [c for c, _ in timer.log]
    assert seen[:4] == [0.125, 0.5, 1.0, 0.5]              # a r b r
    assert seen[4:8] == [0.5, 1.0, 0.5, 0.125]             # r b r a
    assert f.measurement(a).hef_time == 4.0 and f.measurement(b).hef_time == 0.5
    assert len(ref.side.round_medians) == 2 * len(a.side.round_medians)   # one reference window per configuration


def test_a_rounds_hef_is_the_geometric_mean_of_the_reference_windows_beside_it(clock):
    refs = iter([0.5, 2.0] * 100)                           # the reference alternates between two speeds
    f, timer, (a, b), ref = family(clock, [FAST, FAST], reference=lambda: (next(refs), 1.0), rounds=1,
                                   budget_s=0.0)
    f.round()                                               # a r(0.5) b r(2.0): b sits between both
    assert a.ratios == [4.0] and b.ratios == [pytest.approx((0.5 * 2.0) ** 0.5 / 0.125)]


def test_a_reference_alone_is_measured_as_a_configuration(clock):
    f, timer, arms, ref = family(clock, [], rounds=3, budget_s=0.0)
    run(f)
    m = f.measurement(ref)
    assert m.hef_time is None and len(m.config.round_medians) == 3 and m.summary.median == 0.5


class BusyProbe:
    """Contended for the first `busy` rounds, then quiet."""

    def __init__(self, busy):
        self.busy, self.n = busy, 0

    def start(self):
        pass

    def stop(self):
        self.n += 1
        other = 1.0 if self.n <= self.busy else 0.0
        return WindowLoad(0.5, other, 0.0, 2.0, 2)


def test_a_busy_round_is_measured_again_and_left_out(clock):
    probe = BusyProbe(busy=2)
    f, timer, (a,), ref = family(clock, [FAST], probe=probe, rounds=3, budget_s=0.0)
    run(f)
    m = f.measurement(a)
    assert len(m.config.round_medians) == 3 and m.discarded_rounds == 2 and probe.n == 5
    assert m.load.other_cores == 0.0 and not m.load.contended


def test_a_machine_that_stays_busy_is_kept_after_rounds_extra_rounds_and_shows_in_the_load(clock):
    probe = BusyProbe(busy=100)
    f, timer, (a,), ref = family(clock, [FAST], probe=probe, rounds=3, budget_s=0.0)
    run(f)
    m = f.measurement(a)
    assert m.discarded_rounds == 3 and len(m.config.round_medians) == 3 and m.load.contended


def test_a_round_whose_reference_runs_slower_than_the_quiet_machine_is_measured_again(clock):
    speeds = [0.55, 0.5, 0.5249, 0.525] + [0.5] * 100      # the reference's seconds per call, round by round
    timer = SideTimer(clock)
    a, ref = Arm(FAST), Arm(lambda: (speeds[f.attempts - 1], 2.0))
    f = Family([a], ref, timer, NoMeter(), P(rounds=4, budget_s=0.0), quiet_ref_s=0.5)
    run(f)
    m = f.measurement(a)
    # rounds 1 (10% slow) and 4 (exactly 5% slow) are dropped; 3 (4.98% slow) is kept
    assert f.attempts == 6 and f.slow_discarded == 2 and f.discarded == 0 and m.discarded_rounds == 2
    assert len(m.config.round_medians) == 4 and 0.525 not in ref.side.round_medians
    assert 0.5249 in ref.side.round_medians


def test_a_machine_that_stays_slow_is_kept_after_half_of_rounds_extra_and_no_history_drops_nothing(clock):
    slow_ref = lambda: (0.6, 2.0)       # noqa: E731
    timer = SideTimer(clock)
    a = Arm(FAST)
    f = Family([a], Arm(slow_ref), timer, NoMeter(), P(rounds=5, budget_s=0.0), quiet_ref_s=0.5)
    run(f)
    assert f.slow_discarded == 2 and len(a.side.round_medians) == 5
    for quiet, reference in ((None, Arm(slow_ref)), (0.5, None)):
        b = Arm(FAST)
        g = Family([b], reference, SideTimer(clock), NoMeter(), P(rounds=3, budget_s=0.0), quiet_ref_s=quiet)
        run(g)
        assert g.slow_discarded == 0 and b.discarded == 0


def test_a_failing_configuration_stops_alone_and_its_round_is_dropped(clock):
    calls = {"n": 0}

    def dies():
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return 0.25, 1.0
    f, timer, (a, b), ref = family(clock, [FAST, dies], rounds=3, budget_s=0.0)
    run(f)
    assert isinstance(b.error, RuntimeError) and a.error is None
    assert len(a.side.round_medians) == 3 and f.measurement(a).hef_time == 4.0


def test_a_failing_reference_leaves_its_configurations_unpaired(clock):
    calls = {"n": 0}

    def ref():
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("reference died")
        return 0.5, 1.0
    f, timer, (a,), r = family(clock, [FAST], reference=ref, rounds=3, budget_s=0.0)
    run(f)
    m = f.measurement(a)
    assert f.reference is None and isinstance(r.error, RuntimeError)
    assert m.hef_time is None and len(m.config.round_medians) == 3


def test_a_configuration_stops_when_its_share_of_the_budget_is_spent(clock):
    # paired: a 0.5 s window costs 1 s of budget (its reference's window counts too)
    for budget, rounds in ((2.0, 2), (2.5, 3)):
        f, timer, (a,), ref = family(clock, [lambda: (0.25, 1.0)], rounds=2, budget_s=budget, ci_target=0.0,
                                     round_s=0.5)
        run(f)
        assert len(a.side.round_medians) == rounds and a.spent_s == rounds


def test_loads_combine_weighted_by_window_length():
    w = combine_loads([WindowLoad(1.0, 0.0, 0.0, 2.0, 2), WindowLoad(3.0, 1.0, 0.1, 1.0, 2, gpu_other_processes=1)])
    assert w.window_s == 4.0 and w.other_cores == 0.75 and w.steal_frac == pytest.approx(0.075)
    assert w.own_cores == 1.25 and w.gpu_other_processes == 1 and w.threads == 2
    assert combine_loads([]) is None and combine_loads([WindowLoad(0.0, 1.0, 0.0, 0.0, 1)]) is None


def test_a_configuration_whose_rounds_run_at_two_speeds_is_flagged_bimodal(clock):
    speed = [0.125]
    f, timer, (a, b), ref = family(clock, [lambda: (speed[0], 1.0), FAST], rounds=8, budget_s=0.0)
    for i in range(8):
        speed[0] = 0.125 if i % 3 else 0.2          # rounds 0, 3, 6 at the slow speed, 60% apart
        f.round()
    f.finish()
    assert "bimodal" in f.measurement(a).flags
    assert "bimodal" not in f.measurement(b).flags and "bimodal" not in f.measurement(ref).flags


def test_a_configuration_beside_a_reference_at_two_speeds_is_flagged_by_its_hef(clock):
    speed = [0.5]
    f, timer, (a,), ref = family(clock, [FAST], reference=lambda: (speed[0], 2.0), rounds=8, budget_s=0.0)
    for i in range(8):
        speed[0] = 0.5 if i % 3 else 0.8
        f.round()
    f.finish()
    assert "bimodal" in f.measurement(a).flags and "bimodal" in f.measurement(ref).flags
    assert two_speeds(f.measurement(a).config.round_medians, 0.15) is None     # its own times never moved


def test_a_callable_warmed_each_round_gets_one_unmeasured_call_before_each_window_and_pays_for_it(clock):
    f, timer, (a,), ref = family(clock, [SLOW], rounds=3, budget_s=0.0)
    a.warm_each_round, a.call_s, ref.call_s = True, 1.0, 0.5   # calls known from their probes
    assert f.round_cost(a) == 1.0 + 1.0 + 0.5                # a window, its warm-up, a reference window beside it
    run(f)
    seen = [c for c, _ in timer.log]
    assert seen[:3] == [1.0, 1.0, 0.5]                       # warm a, a, r
    assert seen[3:6] == [0.5, 1.0, 1.0]                      # r, warm a, a: the reversed round
    assert len(a.side.round_medians) == 3 and a.side.samples == [1.0, 1.0, 1.0]   # the warm calls not sampled
    assert a.cost_s == pytest.approx(3 * (1.0 + 1.0 + 0.5))  # each warm-up is the configuration's to pay
    assert f.measurement(a).hef_time == 0.5
