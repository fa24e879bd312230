"""run.json: how a run directory's rows were measured. KEYS describes every top-level key a run (or a fleet run)
writes; the manual's run.json reference is made from it, and a test holds every key a real run writes to
one description here.
"""
from __future__ import annotations

KEYS: dict[str, str] = {
    # what wrote it, and what was asked for
    "tool": "always `hwprof`",
    "version": "the hwprof version that started the run",
    "schema_version": "results.csv's schema version; a run of a newer schema than this hwprof reads is refused",
    "command": "the command line that started the run (a list of words)",
    "suite": "the suite as resolved: `name`, `source`, its settings (`budget_s`, `ci_target`, `warmup_s`, "
             "`min_window_s`, `rounds`, `round_s`, `span_s`), `config_ids` in measuring order, `models` (the "
             "`[[model]]` plans) and `raw` (the suite as parsed, which a resume rebuilds it from)",
    "device": "the torch device measured (`cpu`, `cuda:N`; `fleet` for a fleet run)",
    "seed": "seed of every case's inputs",
    "threads_requested": "the thread count asked for (null: torch's default)",
    "method_options": "`roofs` and `history`: whether rows were placed under measured roofs and judged by this "
                      "machine's history; a resume keeps the original's",
    # when, and how it ended
    "started": "when the run started (ISO 8601 with the UTC offset)",
    "ended": "when it last stopped (complete, interrupted or failed)",
    "status": "`running` (being measured, or killed), `interrupted` (a signal), `failed` (an exception or a full "
              "disk), `complete`",
    "resumed": "when each resume started",
    "resume_rejected_rows": "per resume, how many records of results.csv were set aside in results.rejected.csv",
    "wall_s": "the runner's wall time, summed over the run and its resumes",
    "measured_s": "seconds inside measurement windows (roofs, idle power, quiet checks, rounds), summed likewise",
    # the machine and software
    "host": "the host name",
    "os": "the operating system (`platform.platform()`)",
    "python": "the Python version",
    "torch": "the torch version (with its build: `2.13.0+cpu`)",
    "cuda": "the CUDA version torch was built with (null for a CPU build)",
    "device_description": "the device: name, kind, memory, and for a CPU its model, vendor, microarchitecture, "
                          "flags, cores and clocks; for a GPU its capability, UUID, SMs and peaks",
    "threads": "torch's intra-op thread count during the run",
    "timer": "how a batch was timed: `perf_counter_ns` (CPU) or `cuda-events` (CUDA)",
    "flush_l2": "whether L2 was flushed before every timed call (CUDA)",
    "energy": "the meter: `source` (rapl, nvml, estimate, none), its `description`, and `fallbacks` (why the "
              "meters before it were skipped)",
    "policy": "the measurement policy the rows were measured with (budget, CI target, rounds, windows, the "
              "intervals' confidence)",
    "peak_table": "per precision, the peak `mfu` is computed against: FLOP/s, its source and, on a CPU, its ISA path",
    "cpu_clock": "the clock the CPU peak uses (GHz), where it came from, and the cores it counts",
    # what the run measured besides its rows
    "quiet_checks": "per start or resume, what else used the machine before measuring: other cores, steal, "
                    "the busiest processes",
    "idle_power_w": "idle power by meter source, measured once before any warm-up",
    "roofs": "the measured roofs the rows are placed under: memory (STREAM copy and triad) and per precision the "
             "best dense matmul rate, the shape that reached it and the shapes tried",
    "roofs_raised": "roofs a row of this run beat beyond its interval, in words (the cache records which row)",
    "implementations": "which library kernels ran: the libraries' banners, each kernel with its configurations, "
                       "the configurations a reference kernel computed, and those whose calls could not be logged",
    "machine_history": "this machine's history when the run started: its fingerprint and how many runs it held",
    "machine_state": "per block, its references against the machine's quiet state: the slowdown and each ratio",
    "history_checks": "rows compared with their history, flagged off-history, and whose intervals were widened",
    "contention": "contended rows, rows with rounds measured again, rounds dropped (`discarded_rounds`), of "
                  "them as slow (`slow_rounds`)",
    # fleet runs
    "fleet": "a fleet run's cluster: address, one task per gpu or node, logical nodes, the tasks, retries",
    "nodes": "a fleet run's tasks by key: host, node, device identity, and each one's own run metadata",
}
