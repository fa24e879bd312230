"""Benchmark: how much slower code runs right after a matmul on this CPU (run it alone):

    python tests/benchmarks/bench_after_matmul.py

A step's parts are timed apart (kernels.calls: the ops with the matmuls stubbed, the matmuls with the ops
stubbed), so anything a matmul does to the code that follows it is in the step and in neither part. This times
two probes right after each of a few preceding calls, with a busy wait of 0 to 1000 µs between: a loop of the
interpreter's own (scalar code: a lower clock and evicted caches slow it) and tiny's ops of one layer (its two
RMSNorms, the SwiGLU product and a residual add, on the step's shapes). The preceding calls: nothing; tiny's
MLP up-projection (64x256 by 256x688, fp32) on all threads, and on one thread; and, as a control, a parallel
fill writing as many bytes as that matmul reads, which moves memory without the matmul's arithmetic. Each
figure is the median of 1500 probes, the variants interleaved so that all see the same phases of the machine.
Prints each probe's median in µs and its ratio to the probe after nothing.
"""
from __future__ import annotations

import statistics
import time

import torch

from hwprof.kernels import ops

DELAYS_US = (0, 100, 300, 1000)
PROBES = 1500


def busy_wait(us: float) -> None:
    end = time.perf_counter() + us * 1e-6
    while time.perf_counter() < end:
        pass


def interpreter_loop() -> None:
    for _ in range(1000):
        pass


def main() -> int:
    from hwprof.measuring.cpu import cpu_info
    c = cpu_info()
    print(f"{c.model} {c.microarch}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=gen)
    w_up = torch.randn(688, 256, generator=gen)
    norm_w = torch.ones(256)
    gate, up = torch.randn(64, 688, generator=gen), torch.randn(64, 688, generator=gen)
    fill_to = torch.empty(w_up.numel())
    threads = torch.get_num_threads()

    def one_thread_matmul():
        torch.set_num_threads(1)
        torch.nn.functional.linear(x, w_up)
        torch.set_num_threads(threads)

    before = {"nothing": lambda: None, "matmul": lambda: torch.nn.functional.linear(x, w_up),
              "matmul, 1 thread": one_thread_matmul, "fill (control)": lambda: fill_to.fill_(1.0)}

    def layer_ops():
        h = ops.rms_norm(x, norm_w)
        ops.silu_gate(gate, up)
        ops.residual(h, ops.rms_norm(h, norm_w))

    probes = {"interpreter loop": interpreter_loop, "tiny's ops of a layer": layer_ops}
    for probe_name, probe in probes.items():
        print(f"\n{probe_name}: median µs (ratio to after nothing), by the wait after the preceding call")
        print(f"{'after':<18}" + "".join(f"{f'{d} µs':>18}" for d in DELAYS_US))
        table = {name: {d: [] for d in DELAYS_US} for name in before}
        for _ in range(PROBES):
            for d in DELAYS_US:
                for name, call in before.items():
                    call()
                    busy_wait(d)
                    t = time.perf_counter()
                    probe()
                    table[name][d].append(time.perf_counter() - t)
        base = {d: statistics.median(table["nothing"][d]) for d in DELAYS_US}
        for name, by_delay in table.items():
            cells = []
            for d in DELAYS_US:
                med = statistics.median(by_delay[d])
                cells.append(f"{med * 1e6:9.2f} ({med / base[d]:.2f})")
            print(f"{name:<18}" + "".join(f"{cell:>18}" for cell in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
