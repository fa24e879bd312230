"""However long one call is, a configuration costs at most twice its budget plus one call (issue 27): a
kernel of seconds a call (the Xeon's fp8 reference kernel, 6.37 s for 512^3) is measured in fewer rounds and
flagged `few-rounds` instead of eating the run. On a fake clock, so every second is accounted for."""
import pytest

from hwprof.measuring.arm import LONG_CALL_S, prepare_arm
from hwprof.measuring.contention import WindowLoad
from hwprof.measuring.meters.base import NoMeter
from hwprof.measuring.probe import ProbeResult
from hwprof.measuring.rounds import Family
from tests.measuring.test_rounds_clock import P, SideTimer

BUDGET = 1.6                    # the quick suite's
REF_CALL = 0.001


def arms(clock, calls, rounds=8, round_s=0.1, probe_busy=0):
    """A family on a fake clock: each configuration's probing call took `call` s (and so does every call)."""
    timer = SideTimer(clock)
    policy = P(budget_s=BUDGET, rounds=rounds, round_s=round_s, warmup_s=0.01, min_batch_s=0.002, ci_target=0.02)
    made = []
    for call in calls:
        fn = (lambda c=call: (c, 1.0))
        clock.advance(call)                                    # the probe itself
        made.append(prepare_arm(fn, timer, policy, probe=ProbeResult(call, None)))
    ref = prepare_arm(lambda: (REF_CALL, 1.0), timer, policy, probe=ProbeResult(REF_CALL, None))
    probe = Busy(probe_busy) if probe_busy else None
    return Family(made, ref, timer, NoMeter(), policy, probe), timer, made, ref


class Busy:
    def __init__(self, rounds):
        self.left = rounds

    def start(self):
        pass

    def stop(self):
        self.left -= 1
        return WindowLoad(1.0, 1.0 if self.left >= 0 else 0.0, 0.0, 2.0, 2)


def run(f):
    while not f.done:
        f.round()
    f.finish()


def test_a_long_call_needs_no_warm_up_and_its_probe_is_its_first_window(clock):
    f, timer, (arm,), ref = arms(clock, [6.37])
    assert arm.batch == 1 and arm.first is not None and arm.first.samples == [6.37]
    assert [c for c, _ in timer.log if c == 6.37] == []            # no call of it before the rounds
    short = prepare_arm(lambda: (0.2, 1.0), timer, P(warmup_s=0.01, min_batch_s=0.002), probe=ProbeResult(0.2, None))
    assert short.first is None and timer.log[-1] == (0.2, 1)      # under LONG_CALL_S: warmed up as usual
    assert LONG_CALL_S == 1.0


@pytest.mark.parametrize("call", [6.37, 2.5, 0.84, 0.3, 0.1])
def test_no_configuration_costs_more_than_twice_its_budget_plus_one_call(clock, call):
    t0 = clock.now
    f, timer, (arm,), ref = arms(clock, [call])
    run(f)
    m = f.measurement(arm)
    own = sum(c * n for c, n in timer.log if c == call) + (call if arm.side.samples and arm.call_s >= 1 else 0)
    assert m.cost_s <= 2 * BUDGET + call + 1e-9
    assert own <= 2 * BUDGET + call + 1e-9                         # its own calls, probe included
    assert m.cost_s == pytest.approx(arm.cost_s) and m.cost_s >= own - 1e-9
    if call * 2 > 2 * BUDGET:                                       # not even two rounds fit: flagged
        assert "few-rounds" in m.flags and len(m.config.round_medians) < 8
    assert clock.now - t0 <= 2 * BUDGET + call + ref.cost_s + 1e-9          # ref.cost_s: its probe and warm-up


def test_the_six_second_call_is_measured_once_by_its_probe_paired_with_a_reference_window(clock):
    f, timer, (arm,), ref = arms(clock, [6.37])
    run(f)
    m = f.measurement(arm)
    assert len(m.config.round_medians) == 1 and m.summary.median == 6.37 and m.hef_time == pytest.approx(REF_CALL / 6.37)
    assert {"few-rounds", "few-repeats"} <= set(m.flags)
    assert m.cost_s == pytest.approx(6.37 + sum(ref.side.windows) / 1)   # the probe and the reference window beside it


def test_a_busy_round_is_not_measured_again_when_that_would_pass_the_cap(clock):
    f, timer, (arm,), ref = arms(clock, [2.5], probe_busy=3)        # the machine stays busy
    run(f)
    m = f.measurement(arm)
    assert m.cost_s <= 2 * BUDGET + 2.5 and m.discarded_rounds <= 1
    fast, _, (quick,), _ = arms(clock, [0.001], probe_busy=3)       # a short call can afford to measure again
    run(fast)
    assert fast.measurement(quick).discarded_rounds == 3


def test_cost_counts_the_configurations_windows_and_its_share_of_the_reference_windows(clock):
    f, timer, (a, b), ref = arms(clock, [0.004, 0.008], rounds=2)
    run(f)
    windows = sum(a.side.windows)
    assert a.cost_s > windows                                       # plus warm-up, probe and the reference's share
    shares = a.cost_s + b.cost_s - sum(a.side.windows) - sum(b.side.windows)
    assert shares >= sum(ref.side.windows) - 1e-9                   # every reference window charged to someone
    assert ref.cost_s < sum(ref.side.windows)                       # ... and not to the reference again
