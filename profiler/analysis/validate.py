"""`hwprof validate`: hwprof's numbers against peer tools, measured interleaved in the same process.

Tolerances (documented in the README):
  time    ratio to torch.utils.benchmark / triton do_bench within 5% for every kernel kind (dense precisions,
          CSR, BSR, 2:4, flash and math attention), median of interleaved rounds in one process; a kernel so
          slow that fewer than MIN_JUDGED_ROUNDS rounds fit its budget is reported, not judged
  FLOPs   exact equality with FlopCounterMode where it counts the op; "not counted by peer" otherwise
  energy  ratio to Zeus ZeusMonitor within 5% over the same windows (GPU; CPU with RAPL), where installed
Exit code 1 when any check fails, so users can put it in their CI.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from hwprof import kernels
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec
from hwprof.measuring.arm import LONG_CALL_S, prepare_arm
from hwprof.measuring.measure import Policy, measure, run_window
from hwprof.measuring.meters import NoMeter, select_meter
from hwprof.measuring.probe import Prober
from hwprof.measuring.timing import timer_for

TIME_TOLERANCE = 0.05
ENERGY_TOLERANCE = 0.05
ROUNDS = 11           # interleaved rounds per tool: short and many, so both see the same machine phases
ROUND_S = 0.3


@dataclass
class Check:
    kind: str
    what: str
    hwprof: float | None
    peer: float | None
    peer_name: str
    verdict: str          # pass | fail | reported (measured, too few rounds to judge) | skip
    note: str = ""
    paired_ratio: float | None = None     # median of per-round ratios, where rounds were paired

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.hwprof is None or not self.peer:
            return None
        return self.hwprof / self.peer


def _time_hwprof(fn, batch: int, timer) -> float:
    """hwprof's figure for one round: the median per-call time of a window of batches, as the runner takes it."""
    return statistics.median(run_window(fn, batch, timer, ROUND_S)[0])


# one or two pairs of seconds-long calls say how far two calls apart differ, not whether two tools agree
MIN_JUDGED_ROUNDS = 3
CHECK_BUDGET_S = 2 * ROUNDS * ROUND_S   # a time check's budget: both tools' rounds; it costs at most twice this + a call


def _time_torch_benchmark(fn, device, seconds: float = ROUND_S) -> float:
    import torch.utils.benchmark as tb
    t = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return t.blocked_autorange(min_run_time=seconds).median


def rounds_for(call_s: float) -> int:
    """Pure: paired rounds a time check can afford for a kernel of `call_s` a call, within twice
    CHECK_BUDGET_S plus that call: a round is hwprof's window (one call at least) and the peer's block
    estimate and block (two calls at least); a call of LONG_CALL_S or more uses its probing call as hwprof's
    first sample, so its first round costs the peer's two calls only."""
    hw, peer = max(ROUND_S, call_s), max(ROUND_S, 2 * call_s)
    if call_s >= LONG_CALL_S:
        return max(1, min(ROUNDS, 1 + int((2 * CHECK_BUDGET_S - peer) // (hw + peer))))
    return max(1, min(ROUNDS, int((2 * CHECK_BUDGET_S - call_s) // (hw + peer))))


def time_verdict(ratio: float, rounds: int) -> str:
    """Pure: a time check's verdict on the median of its paired rounds' ratios."""
    if rounds < MIN_JUDGED_ROUNDS:
        return "reported"
    return "pass" if abs(ratio - 1) <= TIME_TOLERANCE else "fail"


def _time_do_bench(fn) -> float:
    from triton.testing import do_bench
    return do_bench(fn, warmup=25, rep=int(ROUND_S * 1000), return_mode="median") * 1e-3


def timing_specs(device: torch.device, quick: bool) -> list:
    """One configuration of every kernel kind: dense precisions, CSR, BSR, 2:4 (CUDA), flash and math."""
    sp = SparsitySpec.parse
    if device.type == "cpu":
        specs = [MatmulSpec((512, 512, 512), "fp32"), MatmulSpec((256, 256, 256), "bf16"),
                 MatmulSpec((512, 512, 512), "int8"), MatmulSpec((512, 512, 512), "fp32", sp("unstructured:0.1")),
                 AttentionSpec((1, 4, 256, 256, 64), "fp32", "causal", "flash")]
        if not quick:
            specs += [MatmulSpec((1024, 1024, 1024), "fp32"), MatmulSpec((256, 256, 256), "fp16"),
                      MatmulSpec((512, 512, 512), "fp8_e4m3"), MatmulSpec((512, 512, 512), "fp32", sp("block:32:0.25")),
                      AttentionSpec((1, 4, 256, 256, 64), "fp32", "causal", "math")]
        return specs
    specs = [MatmulSpec((4096, 4096, 4096), "fp32"), MatmulSpec((8192, 8192, 8192), "bf16"),
             AttentionSpec((1, 16, 4096, 4096, 128), "bf16", "causal", "flash")]
    if not quick:
        specs += [MatmulSpec((4096, 4096, 4096), "fp8_e4m3"), MatmulSpec((8192, 8192, 8192), "int8"),
                  MatmulSpec((8192, 8192, 8192), "bf16", sp("2:4")), MatmulSpec((8192, 8192, 8192), "fp32", sp("unstructured:0.01")),
                  AttentionSpec((1, 16, 4096, 4096, 128), "bf16", "causal", "efficient"),
                  AttentionSpec((1, 16, 2048, 2048, 128), "bf16", "causal", "math")]
    return specs


def time_checks(device: torch.device, quick: bool, tick: Callable[[str], None] = lambda label: None) -> list[Check]:
    """Each kernel kind timed by hwprof's own method (one batch choice, then a window a round, as the runner
    measures) and by each peer, in rounds interleaved in one process, who goes first alternating."""
    specs = timing_specs(device, quick)
    peers = [("torch.utils.benchmark", lambda fn: _time_torch_benchmark(fn, device))]
    if device.type == "cuda":
        try:
            import triton.testing  # noqa: F401
            peers.append(("triton do_bench", _time_do_bench))
        except ImportError:
            pass
    timer, out = timer_for(device), []
    for spec in specs:
        try:
            prober = Prober(timer, NoMeter(), device, trace=False)
            case, _ = kernels.build_case(spec, device, call=prober)
        except kernels.Unsupported as e:
            out.append(Check("time", spec.config_id, None, None, "-", "skip", str(e)))
            for _ in peers:
                tick(spec.config_id)
            continue
        call_s = prober.result.seconds
        rounds = rounds_for(call_s)
        with case.context():
            arm = prepare_arm(case.run, timer, Policy(round_s=ROUND_S), probe=prober.result)
            probe_sample = call_s if arm.first is not None else None     # a long call's probe: hwprof's first
            for name, peer in peers:
                tick(f"{spec.config_id} vs {name}")
                first = [] if probe_sample is None else [probe_sample]
                ours, theirs = [], []
                for k in range(rounds):       # interleaved, who goes first alternating, so drift hits both alike
                    mine = first.pop if first else (lambda: _time_hwprof(case.run, arm.batch, timer))
                    if k % 2:
                        theirs.append(peer(case.run))
                        ours.append(mine())
                    else:
                        ours.append(mine())
                        theirs.append(peer(case.run))
                # the verdict is on the median of the per-round ratios: each pair saw the same machine phase
                ratio = statistics.median(h / p for h, p in zip(ours, theirs))
                note = (f"median of {rounds} paired rounds' ratios, order alternating; tolerance {TIME_TOLERANCE:.0%}"
                        + ("" if rounds == ROUNDS else f"; {rounds} of {ROUNDS} rounds: {call_s:.3g} s a call"))
                out.append(Check("time", spec.config_id, statistics.median(ours), statistics.median(theirs), name,
                                 time_verdict(ratio, rounds), note, paired_ratio=ratio))
    return out


def flop_checks(device: torch.device) -> list[Check]:
    from torch.utils.flop_counter import FlopCounterMode
    specs = [MatmulSpec((256, 128, 64), "fp32"), MatmulSpec((4, 64, 32, 16), "fp32"),
             MatmulSpec((128, 64, 32), "fp32", pass_="fwd+bwd"),
             AttentionSpec((1, 4, 128, 128, 32), "fp32", "none", "math"),
             AttentionSpec((1, 4, 128, 128, 32), "fp32", "causal", "math"),
             AttentionSpec((1, 4, 128, 128, 32), "fp32", "causal", "flash"),
             AttentionSpec((1, 4, 128, 128, 32, 2), "fp32", "none", "math"),
             MatmulSpec((256, 128, 64), "int8")]
    out = []
    for spec in specs:
        try:
            case, _ = kernels.build_case(spec, device)
        except kernels.Unsupported as e:
            out.append(Check("flops", spec.config_id, spec.logical_flops, None, "FlopCounterMode", "skip", str(e)))
            continue
        with case.context(), FlopCounterMode(display=False) as counter:
            case.run()
        counted = counter.get_total_flops()
        if counted == 0:
            out.append(Check("flops", spec.config_id, case.logical_flops, None, "FlopCounterMode", "skip",
                             "not counted by peer (FlopCounterMode has no formula for this op)"))
        elif isinstance(spec, MatmulSpec) or spec.pass_ == "fwd":
            verdict = "pass" if counted == case.logical_flops else "fail"
            out.append(Check("flops", spec.config_id, case.logical_flops, counted, "FlopCounterMode", verdict,
                             "exact equality required"))
    return out


def zeus_joules(measurement, device: torch.device) -> float | None:
    """Like-for-like joules from a Zeus Measurement: the GPU's for a CUDA device; for the CPU the sum of the
    packages Zeus read (its `total_energy` sums GPUs only, so it is 0 for a CPU-only window)."""
    if device.type == "cuda":
        gpu = getattr(measurement, "gpu_energy", None) or {}
        return float(gpu[device.index or 0]) if (device.index or 0) in gpu else None
    cpu = getattr(measurement, "cpu_energy", None) or {}
    return float(sum(cpu.values())) if cpu else None


def energy_checks(device: torch.device) -> list[Check]:
    """Joules over the same windows as Zeus. On GPUs both read the same NVML counter, so this is a
    consistency check of the windowing, not an independent measurement (that needs an external power meter)."""
    kind = "energy-consistency" if device.type == "cuda" else "energy"
    try:
        from zeus.monitor import ZeusMonitor
    except ImportError:
        return [Check(kind, "zeus", None, None, "ZeusMonitor", "skip", "zeus is not installed")]
    meter, notes = select_meter(device)
    if meter.source in ("none", "estimate"):
        why = "no RAPL counters readable here" if device.type == "cpu" else f"no NVML energy ({meter.source})"
        return [Check(kind, "zeus", None, None, "ZeusMonitor", "skip", f"{why}; nothing measured to compare")]
    spec = MatmulSpec((4096, 4096, 4096), "bf16") if device.type == "cuda" else MatmulSpec((1024, 1024, 1024), "fp32")
    case, _ = kernels.build_case(spec, device)
    if device.type == "cuda":
        kwargs = {"gpu_indices": [device.index or 0]}
    else:
        kwargs = {"gpu_indices": [], "cpu_indices": list(range(len(getattr(meter, "zones", [None]))))}
    try:
        zeus = ZeusMonitor(**kwargs)
    except Exception as e:
        return [Check(kind, spec.config_id, None, None, "ZeusMonitor", "skip", f"Zeus cannot measure here: {e}")]
    ours, theirs = [], []
    with case.context():
        for i in range(ROUNDS):
            zeus.begin_window(f"w{i}")
            meter.start()
            measure(case.run, timer_for(device), NoMeter(), Policy(budget_s=2.0, min_window_s=2.0, warmup_s=0))
            # (2 s windows here: energy counters need >= 1 s; the rounds stay interleaved with Zeus's)
            reading = meter.stop()
            z = zeus_joules(zeus.end_window(f"w{i}"), device)
            if z is None:
                return [Check(kind, spec.config_id, None, None, "ZeusMonitor", "skip",
                              "Zeus returned no energy for this device")]
            ours.append(reading.energy_j)
            theirs.append(z)
    h, p = statistics.median(ours), statistics.median(theirs)
    if not p:
        return [Check(kind, spec.config_id, h, p, "ZeusMonitor", "skip", "Zeus measured 0 J; nothing to compare")]
    ok = abs(h / p - 1) <= ENERGY_TOLERANCE
    what = "same NVML counter as Zeus: checks windowing, not the meter" if device.type == "cuda" else \
        "all RAPL packages against Zeus's per-package CPU energy, summed"
    return [Check(kind, spec.config_id, h, p, "ZeusMonitor", "pass" if ok else "fail",
                  f"joules over the same {ROUNDS} windows ({meter.source}; {what}); tolerance {ENERGY_TOLERANCE:.0%}")]


FLOP_SPECS = 8


def planned_checks(device: torch.device, quick: bool) -> int:
    """How many steps `run_validation` reports to its progress callback."""
    peers = 2 if device.type == "cuda" else 1
    return 1 + len(timing_specs(device, quick)) * peers + 1


def run_validation(device: torch.device, quick: bool = False,
                   progress: Callable[[int, str], None] = lambda done, label: None) -> list[Check]:
    """Every check on one device; a failed check has verdict "fail". `progress(done, label)` hears each step
    (the FLOP checks, each time check per peer, the energy check) as it starts."""
    done = [0]

    def tick(label: str) -> None:
        progress(done[0], label)
        done[0] += 1
    tick("FLOPs against FlopCounterMode")
    checks = flop_checks(device) + time_checks(device, quick, tick)
    tick("energy against Zeus")
    checks += energy_checks(device)
    progress(done[0], "done")
    return checks
