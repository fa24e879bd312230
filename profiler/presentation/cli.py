"""`hwprof` command line. Bad input: one line on stderr, exit 2. Interrupted run: exit 130."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwprof.analysis.forecast_table import Scenario
from hwprof.errors import BadInput, OutputError
from hwprof.measuring.meters import ENERGY_CHOICES
from hwprof.presentation.commands import (cmd_claims, cmd_compare, cmd_devices, cmd_fleet, cmd_forecast, cmd_report,
                                          cmd_run, cmd_validate)
from hwprof.presentation.text import visible
from hwprof.running import bounds


def _bounded(name: str):
    """A flag's parser with the bounds the same value has in a suite (running.bounds)."""
    def parse(text: str):
        try:
            return bounds.parse(name, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = name          # argparse names the type in its message
    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):            # one line, exit 2 (argparse would print the whole usage)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _suite_options(r: argparse.ArgumentParser) -> None:
    """What `run` and `fleet` share: the suite, where results go, and how each configuration is measured."""
    r.add_argument("--suite", default=None,
                   help="quick | standard | full | schemes | model:NAME (tiny, gpt2-small, llama3-8b, llama3-70b) | FILE.toml "
                        "(default quick)")
    r.add_argument("--out", type=Path, default=Path("reports"), help="directory for run directories (default reports/)")
    r.add_argument("--seed", type=_bounded("seed"), default=None, help="seed of the inputs (default 0; a resume keeps its own)")
    r.add_argument("--energy", default="auto", choices=ENERGY_CHOICES,
                   help="energy meter (default auto: NVML for a GPU, RAPL for a CPU, else the estimate); rapl and "
                        "estimate are refused for a CUDA device, whose joules are not the CPU package's")
    r.add_argument("--cpu-tdp-watts", type=_bounded("cpu_tdp_watts"), default=None, help="TDP for the CPU energy estimate")
    r.add_argument("--flush-l2", action="store_true", help="CUDA: flush L2 before each timed batch")
    r.add_argument("--threads", type=_bounded("threads"), default=None, help="CPU: torch intra-op threads")
    r.add_argument("--budget-s", type=_bounded("budget_s"), default=None, help="time budget per configuration")
    r.add_argument("--ci-target", type=_bounded("ci_target"), default=None, help="relative CI half-width target")
    r.add_argument("--no-report", action="store_true", help="skip report.html/report.md")
    r.add_argument("--quiet-check-s", type=_bounded("quiet_check_s"), default=1.0, metavar="SECONDS",
                   help="how long to probe what else uses the machine before the run (0: no check)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    r.add_argument("--remeasure-roofs", action="store_true",
                   help="measure this machine's memory and compute roofs again instead of using the cached ones")
    r.add_argument("--no-roofs", action="store_true", help="do not measure or load roofs (no roof_* columns)")
    r.add_argument("--no-history", action="store_true",
                   help="do not compare the references with this machine's earlier runs, nor add this run to them")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hwprof", description="Hardware efficiency profiler: logical FLOPs against time and energy.")
    from hwprof.version import __version__
    p.add_argument("--version", action="version", version=f"hwprof {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("run", help="run a suite (default: quick on the best local device)")
    _suite_options(r)
    r.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the suite's, else auto)")
    r.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="complete an interrupted run")
    r.add_argument("--cpu-max-ghz", type=_bounded("cpu_max_ghz"), default=None,
                   help="max CPU clock for the theoretical peak where cpufreq is missing (VMs)")
    r.add_argument("--wait-quiet", type=_bounded("wait_quiet_s"), default=0.0, metavar="SECONDS",
                   help="wait up to this long for other processes to leave the CPUs before starting")
    r.set_defaults(func=cmd_run)

    fl = sub.add_parser("fleet", help="run a suite on every GPU or node of a Ray cluster, into one table")
    _suite_options(fl)
    fl.add_argument("--address", default="auto",
                    help="auto (the cluster this machine belongs to) | HOST:PORT | local (start one here)")
    fl.add_argument("--local-nodes", type=_bounded("local_nodes"), default=0, metavar="N",
                    help="with --address local: N logical nodes, to try fleet mode on one machine")
    fl.add_argument("--per", choices=["gpu", "node"], default=None,
                    help="one task per GPU, or per node on its CPUs (default: gpu where the cluster has GPUs)")
    fl.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                    help="re-run only the (device, configuration) pairs a fleet run is missing")
    fl.add_argument("--retries", type=_bounded("retries"), default=1, help="re-runs of a task that dies (default 1)")
    fl.set_defaults(func=cmd_fleet)

    d = sub.add_parser("devices", help="devices, peak table entries and energy meters")
    d.add_argument("--cpu-tdp-watts", type=_bounded("cpu_tdp_watts"), default=None,
                   help="TDP for the CPU energy estimate (default: 7 W per usable CPU)")
    d.set_defaults(func=cmd_devices)

    rep = sub.add_parser("report", help="(re)render report.html and report.md with plots")
    rep.add_argument("run_dir", type=Path, help="a run directory")
    rep.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="ratios per matching configuration of two runs")
    c.add_argument("run_a", type=Path, help="the run the ratios are against")
    c.add_argument("run_b", type=Path, help="the run compared with it")
    c.add_argument("--out", type=Path, default=None, help="where to write compare.csv/.md (default: RUN_B)")
    c.add_argument("--allow-unlike", action="store_true",
                   help="compare runs measured with different meters, threads, torch or devices (flagged)")
    c.set_defaults(func=cmd_compare)

    f = sub.add_parser("forecast", help="feed measured efficiency into the scaling-law forecast")
    f.add_argument("run_dir", type=Path, help="a run directory whose rows have a logical FLOP/J")
    f.add_argument("--scenario", type=Path, default=None, help="scenario TOML (flags override its values)")
    f.add_argument("--power-watts", type=float, default=None, help=f"the constant power budget P0 (default {Scenario.power_watts:g})")
    f.add_argument("--years", type=float, default=None, help=f"the horizon T in years (default {Scenario.years:g})")
    f.add_argument("--doublings-per-year", type=float, default=None,
                   help=f"beta: doublings of efficiency a year after E0 (default {Scenario.doublings_per_year:g})")
    f.add_argument("--kappa", type=float, default=None,
                   help="the loss's compute exponent (default: the law's compute-optimal one)")
    f.add_argument("--law", choices=["chinchilla"], default=None, help="derive kappa from a published law")
    f.add_argument("--target-ratio", type=float, default=None,
                   help=f"the excess-loss ratio to report the years to (default {Scenario.target_ratio:g})")
    f.add_argument("--train-params", type=float, default=None, help="model parameters N for the training-cost view")
    f.add_argument("--train-tokens", type=float, default=None, help="training tokens D for the training-cost view")
    f.add_argument("--model", default=None, metavar="NAME",
                   help="use this [[model]]'s measured whole step (FLOP/J per precision setting) as E0, with tokens per joule")
    f.add_argument("--phase", default="decode", choices=["prefill", "decode"],
                   help="with --model: the step whose efficiency is E0 (default decode, the inference case)")
    f.set_defaults(func=cmd_forecast)

    cl = sub.add_parser("claims", help="published efficiency claims checked against a run's measurements")
    cl.add_argument("run_dir", type=Path, help="a run directory")
    cl.set_defaults(func=cmd_claims)

    v = sub.add_parser("validate", help="cross-check measurements against peer tools")
    v.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    v.add_argument("--quick", action="store_true", help="fewer, smaller checks")
    v.add_argument("--model", default=None, metavar="NAME|FILE",
                   help="instead: hwprof's whole prefill and decode steps of a preset or a config.json against the "
                        "same model built by Hugging Face transformers")
    v.add_argument("--precisions", default="fp32,bf16", help="with --model: comma-separated (default fp32,bf16)")
    v.set_defaults(func=cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:               # bad flags (exit 2) or --help/--version (exit 0), already printed
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from hwprof.running.interrupts import Interrupted
    try:
        return int(args.func(args) or 0)
    except BadInput as e:
        print(f"hwprof: error: {visible(e)}", file=sys.stderr)
        return 2
    except OutputError as e:
        resume = (f"; what was measured is kept: resume with hwprof {getattr(args, 'command', 'run')} --resume "
                  f"{visible(e.run_dir)} once there is room" if e.run_dir is not None else "")
        print(f"hwprof: error: {visible(e)}{resume}", file=sys.stderr)
        return 2
    except OSError as e:                 # an unreadable input or unwritable output the checks did not foresee
        where = f"{visible(e.filename)}: " if e.filename else ""
        print(f"hwprof: error: {where}{visible(e.strerror or e)}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"\nhwprof: interrupted ({e.kept}); resume with: hwprof {e.verb} --resume {visible(e.run_dir)}",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nhwprof: interrupted", file=sys.stderr)
        return 130
