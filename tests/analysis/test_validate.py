import torch

from hwprof.analysis import validate


def test_flop_checks_pass_or_say_not_counted_on_cpu():
    checks = validate.flop_checks(torch.device("cpu"))
    assert not [c for c in checks if c.verdict == "fail"]
    by = {c.what: c for c in checks}
    assert by["matmul/256x128x64/fp32/dense/fwd"].verdict == "pass"
    assert by["attention/1x4x128x128x32/fp32/causal/math/fwd"].verdict == "pass"
    flash = by["attention/1x4x128x128x32/fp32/causal/flash/fwd"]
    assert flash.verdict == "skip" and "not counted by peer" in flash.note
    assert "not counted by peer" in by["matmul/256x128x64/int8/dense/fwd"].note


def test_time_check_verdicts_follow_the_tolerance(monkeypatch):
    monkeypatch.setattr(validate, "_time_hwprof", lambda fn, batch, timer: 1.02)
    monkeypatch.setattr(validate, "_time_torch_benchmark", lambda fn, device: 1.00)
    assert {c.verdict for c in validate.time_checks(torch.device("cpu"), quick=True)} == {"pass"}
    monkeypatch.setattr(validate, "_time_hwprof", lambda fn, batch, timer: 1.07)
    checks = validate.time_checks(torch.device("cpu"), quick=True)
    assert {c.verdict for c in checks} == {"fail"} and abs(checks[0].ratio - 1.07) < 1e-12


def test_time_checks_pair_rounds_alternating_who_goes_first_and_judge_the_median_ratio(monkeypatch):
    """A machine that slows down with every measurement: paired rounds with the order alternating keep the
    ratio near 1 (median of per-round ratios 0.955, a pass), where the ratio of the two medians, 12/11,
    would fail."""
    log, speed = [], iter(range(1, 10_000))

    def tool(name):
        def t(fn, *args):
            log.append(name)
            return float(next(speed))
        return t
    monkeypatch.setattr(validate, "_time_hwprof", tool("ours"))
    monkeypatch.setattr(validate, "_time_torch_benchmark", tool("peer"))
    first = validate.timing_specs(torch.device("cpu"), True)[:1]
    monkeypatch.setattr(validate, "timing_specs", lambda device, quick: first)
    monkeypatch.setattr(validate, "ROUNDS", 11)
    (check,) = validate.time_checks(torch.device("cpu"), quick=True)
    assert log[:4] == ["ours", "peer", "peer", "ours"] and len(log) == 22
    assert abs(check.ratio - 21 / 22) < 1e-12 and check.verdict == "pass"
    assert (check.hwprof, check.peer) == (12.0, 11.0)          # each tool's own median is still shown


def test_exit_code_is_1_when_a_check_fails(monkeypatch, capsys):
    from hwprof.presentation.cli import main
    monkeypatch.setattr(validate, "time_checks", lambda d, q, tick: [validate.Check("time", "x", 2.0, 1.0, "peer", "fail")])
    assert main(["validate", "--device", "cpu", "--quick"]) == 1
    monkeypatch.setattr(validate, "time_checks", lambda d, q, tick: [])
    assert main(["validate", "--device", "cpu", "--quick"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_energy_check_skips_without_zeus_or_meter():
    (check,) = validate.energy_checks(torch.device("cpu"))
    assert check.verdict == "skip"


def test_zeus_joules_compare_like_with_like():
    from types import SimpleNamespace
    m = SimpleNamespace(gpu_energy={0: 10.0, 1: 99.0}, cpu_energy={0: 30.0, 1: 20.0}, total_energy=109.0)
    assert validate.zeus_joules(m, torch.device("cuda", 1)) == 99.0
    assert validate.zeus_joules(m, torch.device("cpu")) == 50.0                     # every package, not package 0
    cpu_only = SimpleNamespace(gpu_energy={}, cpu_energy=None, total_energy=0.0)    # what Zeus gives without RAPL
    assert validate.zeus_joules(cpu_only, torch.device("cpu")) is None


def test_energy_check_with_zeus_but_no_rapl_skips_with_a_reason(monkeypatch):
    import sys
    import types
    fake = types.ModuleType("zeus.monitor")
    fake.ZeusMonitor = lambda **kw: (_ for _ in ()).throw(AssertionError("must not be constructed"))
    monkeypatch.setitem(sys.modules, "zeus", types.ModuleType("zeus"))
    monkeypatch.setitem(sys.modules, "zeus.monitor", fake)
    monkeypatch.setattr(validate, "select_meter", lambda device: (validate.NoMeter(), []))
    (check,) = validate.energy_checks(torch.device("cpu"))
    assert check.verdict == "skip" and "RAPL" in check.note


def test_rounds_fit_twice_the_budget_plus_one_call():
    """On the Xeon, fp8 512^3 ran oneDNN's reference kernel at 6.37 s a call and validate took 17 minutes:
    11 paired rounds per tool, each of several calls. A check now costs at most twice its budget plus a call."""
    budget = validate.CHECK_BUDGET_S
    for call in (1e-4, 0.01, 0.3, 0.84, 2.0, 6.37, 60.0):
        r = validate.rounds_for(call)
        hw, peer = max(validate.ROUND_S, call), max(validate.ROUND_S, 2 * call)
        long = call >= validate.LONG_CALL_S
        cost = call + (r * peer + (r - 1) * hw if long else r * (hw + peer))     # probe, then the rounds
        assert 1 <= r <= validate.ROUNDS and (cost <= 2 * budget + call or r == 1), call
    assert validate.rounds_for(1e-4) == validate.ROUNDS and validate.rounds_for(6.37) == 1


def test_a_kernel_of_seconds_is_checked_within_its_cap_using_its_probe(monkeypatch):
    """A fake 6.37 s kernel (the Xeon's fp8 reference kernel): the probing call is hwprof's sample, the peer
    makes its two calls, and nothing else runs."""
    from tests.measuring.fakes import ClockTimer, FakeClock
    clock = FakeClock()

    class CallingTimer(ClockTimer):               # calls fn (the probe needs its output), time is the clock's
        def time_batch(self, fn, n):
            fn()
            return super().time_batch(fn, n)
    timer = CallingTimer(clock, [6.37])
    calls = []
    monkeypatch.setattr(validate, "timer_for", lambda device: timer)
    first = validate.timing_specs(torch.device("cpu"), True)[:1]
    monkeypatch.setattr(validate, "timing_specs", lambda device, quick: first)

    def peer(fn, device):
        calls.append("peer")
        timer.time_batch(fn, 1)                  # its block-size estimate (a warm-up) ...
        return timer.time_batch(fn, 1)           # ... and one block
    monkeypatch.setattr(validate, "_time_torch_benchmark", peer)
    ticks = []
    (check,) = validate.time_checks(torch.device("cpu"), quick=True, tick=ticks.append)
    # one pair of seconds-long calls is reported, not judged: it cannot say whether the two tools agree
    assert check.verdict == "reported" and check.ratio == 1.0 and "1 of 11 rounds" in check.note
    assert timer.batches == [1, 1, 1] and clock.now - 1024.0 <= 2 * validate.CHECK_BUDGET_S + 6.37
    assert ticks == ["matmul/512x512x512/fp32/dense/fwd vs torch.utils.benchmark"]


def test_progress_hears_every_planned_step(monkeypatch):
    monkeypatch.setattr(validate, "flop_checks", lambda device: [])
    monkeypatch.setattr(validate, "energy_checks", lambda device: [])
    monkeypatch.setattr(validate, "_time_hwprof", lambda fn, batch, timer: 1.0)
    monkeypatch.setattr(validate, "_time_torch_benchmark", lambda fn, device: 1.0)
    monkeypatch.setattr(validate, "ROUNDS", 1)
    seen = []
    validate.run_validation(torch.device("cpu"), quick=True, progress=lambda done, label: seen.append(done))
    assert seen == list(range(validate.planned_checks(torch.device("cpu"), True) + 1))


def test_a_time_check_is_judged_only_on_enough_rounds():
    tol = validate.TIME_TOLERANCE
    assert validate.time_verdict(1.0, validate.MIN_JUDGED_ROUNDS) == "pass"
    assert validate.time_verdict(1 + 2 * tol, validate.ROUNDS) == "fail"
    assert validate.time_verdict(1 - 2 * tol, validate.ROUNDS) == "fail"
    # the Xeon's fp8 reference kernel: one round of 10.5 s against 12.3 s
    assert validate.time_verdict(0.854, 1) == "reported"
    assert validate.time_verdict(1.0, validate.MIN_JUDGED_ROUNDS - 1) == "reported"
