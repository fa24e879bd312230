"""Paired, interleaved measurement: configurations and their reference alternate in short windows.

hef is a ratio, so it is measured as one. A `Family` is a reference and the configurations measured against
it. Each round gives every active configuration a short window beside one of the reference: c1 r c2 r ... ck r,
reversed in the next round. A round's hef is the geometric mean of the reference windows beside a
configuration over its own, so drift common to both cancels; intervals are distribution-free, over rounds.
The runner interleaves many families' rounds (passes), spreading each configuration's rounds over its block.
A round the machine was busy for is measured again: another process ran beside it (up to `rounds` extra per
family), or the reference ran 5% slower than it does on this machine when the host is quiet, which no CPU
time shows (the machine's history gives that speed; up to half of `rounds` extra). Energy is metered per
window when the meter resolves windows that short; otherwise one window of each callable alone follows.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Callable, Sequence

from hwprof.measuring.arm import Arm, RoundsMeasurement, Side, Window
from hwprof.measuring.contention import SLOWER_THAN_QUIET, LoadProbe, WindowLoad, combine_loads
from hwprof.measuring.measure import MIN_SAMPLES_HARD, Policy, flush_energy, run_window
from hwprof.measuring.meters.base import EnergyMeter, EnergyReading
from hwprof.measuring.stats import Summary, median_ci, summarize, two_speeds
from hwprof.measuring.timing import Timer

# A metered window must last this many meter updates for its reading to be kept. Its ends fall at random
# phases of the updates, so each end is off by less than one update: a reading by 4% typically (20% at
# worst), a configuration's rounds summed by far less. Coarser meters get one long window per configuration.
ROUND_RESOLUTIONS = 10
MIN_PROBE_S = 0.2           # CPU times tick every 10 ms: shorter probes say nothing about contention
# Round medians split by a gap this wide flag `bimodal`: the repeat target is 15% between runs, and a row
# whose rounds sit at two speeds that far apart can miss it by its median alone.
BIMODAL_GAP = 0.15

class Family:
    """A reference and its configurations, measured round by round (see the module docstring)."""

    def __init__(self, configs: Sequence[Arm], reference: Arm | None, timer: Timer, meter: EnergyMeter,
                 policy: Policy, probe: LoadProbe | None = None, quiet_ref_s: float | None = None):
        if not configs and reference is not None:       # a reference on its own is measured like a configuration
            configs, reference = [reference], None
        self.configs, self.reference = list(configs), reference
        self.timer, self.meter, self.policy, self.probe = timer, meter, policy, probe
        self.per_round_energy = meter.source != "none" and policy.round_s >= ROUND_RESOLUTIONS * meter.resolution_s
        need = max(policy.min_window_s, meter.min_window_s) if self.per_round_energy else policy.min_window_s
        self.round_s = max(policy.round_s, need / policy.rounds)
        self.attempts = 0                   # rounds run, kept or discarded (their parity orders the windows)
        self.discarded = 0
        # the reference's seconds per call when the machine is quiet (its history); a round whose reference
        # windows run SLOWER_THAN_QUIET slower than that is dropped, up to half of `rounds` per family
        self.quiet_ref_s = quiet_ref_s if reference is not None else None
        self.slow_discarded = 0
        self.sampled_s = 0.0
        self.reference_error: BaseException | None = None
        # hears every round, kept or dropped (windows, load, busy, slow): the runner journals it
        self.on_round: Callable[[list[Window], WindowLoad | None, bool, bool], None] = lambda *record: None

    @property
    def arms(self) -> list[Arm]:
        return self.configs + ([self.reference] if self.reference is not None else [])

    @property
    def active(self) -> list[Arm]:
        return [a for a in self.configs if not a.done and a.error is None]

    @property
    def done(self) -> bool:
        return not self.active

    def round(self) -> None:
        """One round over the active configurations; a round the machine was busy for is dropped, unless
        measuring it again would take one of them past its cap."""
        arms = self.active
        if not arms:
            return
        order: list[Arm] = []
        for a in arms:
            order += [a] + ([self.reference] if self.reference is not None else [])
        if self.attempts % 2:
            order.reverse()                 # which side goes first alternates between rounds
        self.attempts += 1
        if self.probe is not None:
            self.probe.start()
        windows = []
        for arm in order:
            try:
                windows.append(self._first(arm) or self._window(arm))
            except Exception as e:          # this callable failed: drop the round, go on without it
                arm.error = e
                if arm is self.reference:
                    self.reference_error, self.reference = e, None
                if self.probe is not None:
                    self.probe.stop()
                return
        self._charge(windows)
        load = self.probe.stop() if self.probe is not None else None
        if load is not None and load.window_s < MIN_PROBE_S:
            load = None
        affordable = all(a.cost_s + self.round_cost(a) <= a.cap_s for a in arms)
        busy = load is not None and load.contended and self.discarded < self.policy.rounds and affordable
        slow = (not busy and affordable and self._slow(windows)
                and self.slow_discarded < self.policy.rounds // 2)
        self._apply(arms, windows, load, busy, slow)
        self.on_round(windows, load, busy, slow)

    def replay(self, windows: list[Window], load: WindowLoad | None, busy: bool, slow: bool) -> None:
        """A round measured earlier (a resumed run's rounds.jsonl), applied as it was decided then: the
        family's state ends as if it had just been measured."""
        arms: list[Arm] = []
        for w in windows:                   # in order, each once (by identity: arms compare by value)
            if w.arm is not self.reference and not any(a is w.arm for a in arms):
                arms.append(w.arm)
        self.attempts += 1
        for w in windows:
            self.sampled_s += w.wall
            if w.recorded:
                w.arm.first = None
        self._charge(windows)
        self._apply(arms, windows, load, busy, slow)

    def _apply(self, arms: list[Arm], windows: list[Window], load: WindowLoad | None, busy: bool, slow: bool) -> None:
        """A round's outcome: dropped (the machine was busy, or the reference slow), or kept."""
        if busy or slow:
            self.discarded += int(busy)
            self.slow_discarded += int(slow)
            for a in arms + ([self.reference] if self.reference is not None else []):   # its windows too
                a.discarded += 1
            return
        self._keep(windows, load)
        for a in arms:
            a.done = self._finished(a)

    def _first(self, arm: Arm) -> Window | None:
        """A configuration's probing call, used once as its first window (calls longer than a window)."""
        w, arm.first = arm.first, None
        if w is None or arm is self.reference:
            return None
        self.sampled_s += w.wall
        joules = (w.joules if w.joules is not None else math.nan) if self.per_round_energy else None
        return replace(w, joules=joules, recorded=True)

    def _charge(self, windows: list[Window]) -> None:
        """What the round cost each configuration: its own window (a recorded probe was paid when it was
        made) and its share of each reference window beside it (split between the two configurations a
        window serves). A reference's windows are charged to the configurations beside them, so a reference
        row's cost is its probe and warm-up (or its windows, when it is measured alone)."""
        charged: dict[int, float] = {}
        for i, w in enumerate(windows):
            paid = w.wall + w.warm_s
            if w.arm is not self.reference:
                charged[id(w.arm)] = charged.get(id(w.arm), 0.0) + paid
                w.arm.cost_s += 0.0 if w.recorded else paid
                continue
            near = [windows[j].arm for j in (i - 1, i + 1)
                    if 0 <= j < len(windows) and windows[j].arm is not self.reference]
            for a in near:
                a.cost_s += paid / len(near)
                charged[id(a)] = charged.get(id(a), 0.0) + paid / len(near)
        for w in windows:
            if id(w.arm) in charged:
                w.arm.last_round_s = charged[id(w.arm)]

    def round_cost(self, arm: Arm) -> float:
        """What one more round would cost `arm`: its last round's, or before any, a window (at least one
        call) and a reference window beside it."""
        if arm.last_round_s:
            return arm.last_round_s
        paired = self.reference is not None and arm is not self.reference
        return arm.window_cost(self.round_s) + (self.reference.window_cost(self.round_s) if paired else 0.0)

    def _slow(self, windows: list[Window]) -> bool:
        """The host was busier than usual: the round's reference windows, by their median, ran
        SLOWER_THAN_QUIET or more slower than the reference does on this machine when it is quiet."""
        refs = [statistics.median(w.samples) for w in windows if w.arm is self.reference]
        return bool(self.quiet_ref_s and refs) and statistics.median(refs) >= self.quiet_ref_s * (1 + SLOWER_THAN_QUIET)

    def _window(self, arm: Arm) -> Window:
        with arm.context():
            warm_s = arm.warm_up(self.timer)
            if self.per_round_energy:
                self.meter.start()
            samples, calls, wall = run_window(arm.fn, arm.batch, self.timer, self.round_s)
            reading = self.meter.stop() if self.per_round_energy else None
        self.sampled_s += wall
        joules = None
        if reading is not None:
            joules = reading.energy_j if reading.energy_j is not None else math.nan
        return Window(arm, samples, calls, wall, joules, warm_s=warm_s)

    def _keep(self, windows: list[Window], load: WindowLoad | None) -> None:
        for w in windows:
            side = w.arm.side
            side.samples += w.samples
            side.round_medians.append(statistics.median(w.samples))
            side.calls.append(w.calls)
            side.windows.append(w.wall)
            if w.joules is not None:
                side.joules.append(w.joules)
        for i, w in enumerate(windows):
            if w.arm is self.reference:
                continue
            arm = w.arm
            if load is not None:
                arm.loads.append(load)
            refs = [windows[j] for j in (i - 1, i + 1) if 0 <= j < len(windows) and windows[j].arm is self.reference]
            arm.spent_s += w.wall * (2 if refs else 1)
            mine = statistics.median(w.samples)
            if refs and mine > 0:
                arm.ratios.append(math.prod(statistics.median(r.samples) for r in refs) ** (1 / len(refs)) / mine)
            if refs and w.joules is not None:
                ref_j, ref_c = sum(r.joules for r in refs), sum(r.calls for r in refs)
                arm.ref_joules += ref_j
                arm.ref_calls += ref_c
                if w.joules > 0 and ref_j > 0:       # NaN compares false: a failed reading is left out too
                    arm.energy_ratios.append((ref_j / ref_c) / (w.joules / w.calls))
        if self.reference is not None and load is not None:
            self.reference.loads.append(load)

    def _finished(self, arm: Arm) -> bool:
        p = self.policy
        rounds = len(arm.side.round_medians)
        if rounds and arm.cost_s + self.round_cost(arm) > arm.cap_s:
            return True                     # one more round would take it past its cap: few-rounds
        if rounds < p.rounds or len(arm.side.samples) < MIN_SAMPLES_HARD:
            return False
        if arm.spent_s >= p.budget_s:
            return True
        target = summarize(arm.ratios if self.reference is not None else arm.side.round_medians, p.confidence)
        return target.exact and target.rel_ci_halfwidth <= p.ci_target

    def finish(self, arms: Sequence[Arm] | None = None) -> None:
        """After the last round, for `arms` (default all): each one's energy window when rounds were too
        short for the meter, and the flush energy to take out of it."""
        for arm in self.arms if arms is None else arms:
            if arm.error is not None or not arm.side.samples:
                continue
            if self.per_round_energy and not any(math.isnan(j) for j in arm.side.joules):
                arm.energy = EnergyReading(sum(arm.side.joules), sum(arm.side.windows), self.meter.source)
                calls = sum(arm.side.calls)
            elif self.meter.source != "none":
                with arm.context():         # the meter cannot resolve short windows: one long one alone
                    self.meter.start()
                    samples, calls, wall = run_window(arm.fn, arm.batch, self.timer, self.meter.min_window_s)
                    arm.energy = self.meter.stop()
                arm.side.samples += samples
                arm.energy_window_s = wall
                self.sampled_s += wall
            else:
                arm.energy = EnergyReading(None, sum(arm.side.windows), "none")
                calls = sum(arm.side.calls)
            arm.energy_calls = calls
            if self.timer.flushes and arm.energy.energy_j is not None:
                arm.flush_j = flush_energy(self.timer, self.meter, calls)

    def measurement(self, arm: Arm) -> RoundsMeasurement:
        """What `arm` measured; hef against the reference when it was paired (call after `finish`)."""
        p = self.policy
        summary = _summary(arm.side, p.confidence)
        paired = arm is not self.reference and bool(arm.ratios) and self.reference_error is None
        hef_summary = summarize(arm.ratios, p.confidence) if paired else None
        hef = hef_summary.median if hef_summary else None
        hef_ci = (hef_summary.ci_low, hef_summary.ci_high) if hef_summary and hef_summary.exact else None
        flags = []
        if summary.rel_ci_halfwidth > p.ci_target or (hef_ci is not None and hef_summary.rel_ci_halfwidth > p.ci_target):
            flags.append("noisy")
        if not summary.exact:
            flags.append("few-repeats")
        if len(arm.side.round_medians) < p.rounds:
            flags.append("few-rounds")          # its cap allowed fewer rounds than the suite asks (long calls)
        if any(two_speeds(v, BIMODAL_GAP) is not None for v in (arm.side.round_medians, arm.ratios)):
            flags.append("bimodal")             # its times, or its hef against a reference that switched
        energy = arm.energy or EnergyReading(None, sum(arm.side.windows), "none")
        hef_energy_ci = paired_energy = None
        if paired and self.per_round_energy and arm.energy_ratios and arm.ref_calls and energy.energy_j \
                and math.isfinite(arm.ref_joules):
            paired_energy = (arm.ref_joules / arm.ref_calls) / (energy.energy_j / sum(arm.side.calls))
            hef_energy_ci = median_ci(arm.energy_ratios, p.confidence)
        if energy.energy_j is not None and energy.window_s < self.meter.min_window_s:
            flags.append("short-window")
        load = combine_loads(arm.loads)
        if load is not None and load.window_s < MIN_PROBE_S:
            load = None
        reference = self.reference.side if self.reference is not None and arm is not self.reference else None
        return RoundsMeasurement(arm.side, reference, arm.batch, summary, hef, hef_ci, hef_energy_ci, energy,
                                 arm.energy_calls or sum(arm.side.calls), energy.window_s, load,
                                 flags, sum(arm.side.windows) + arm.energy_window_s, arm.flush_j, paired_energy,
                                 self.reference.batch if self.reference is not None else 0, arm.discarded,
                                 arm.cost_s)


def _summary(side: Side, confidence: float) -> Summary:
    """Median and its interval over round medians (between-round variation); IQR and n over all samples."""
    over_rounds = summarize(side.round_medians, confidence)
    pooled = summarize(side.samples, confidence)
    return Summary(over_rounds.median, over_rounds.ci_low, over_rounds.ci_high, pooled.rel_iqr, pooled.n,
                   over_rounds.exact)
