"""The verbs of `hwprof` (presentation.cli parses the flags and calls one): each runs the layers below and
prints what they return. Bad input is BadInput (cli: one line, exit 2)."""
from __future__ import annotations

import sys
from pathlib import Path

from hwprof.errors import BadInput
from hwprof.presentation.text import visible


def _measure_kwargs(args) -> dict:
    """RunOptions fields from the shared options (what a fleet task passes on to each node's runner)."""
    return dict(seed=args.seed, energy=args.energy, cpu_tdp_watts=args.cpu_tdp_watts, flush_l2=args.flush_l2,
                threads=args.threads, budget_s=args.budget_s, ci_target=args.ci_target,
                quiet_check_s=args.quiet_check_s, roofs=not args.no_roofs, remeasure_roofs=args.remeasure_roofs,
                baseline=not args.no_history)


def cmd_run(args) -> int:
    from hwprof.presentation.console import print_results, print_warning, progress_bar
    from hwprof.running.runner import execute
    from hwprof.running.session import RunOptions
    opts = RunOptions(suite=args.suite, device=args.device, out_dir=args.out, resume=args.resume,
                      cpu_max_ghz=args.cpu_max_ghz, wait_quiet_s=args.wait_quiet, command=["hwprof", *sys.argv[1:]],
                      **_measure_kwargs(args))
    result = execute(opts, progress=None if args.quiet else progress_bar, notify=print_warning)
    from hwprof.analysis.models import write_models
    write_models(result.run_dir, result.results, result.meta)
    if not args.no_report:
        from hwprof.presentation.report import render_report
        render_report(result.run_dir)
    if not args.quiet:
        print_results(result.results, result.meta)
    print(f"run directory: {visible(result.run_dir)}")
    return 0


def cmd_fleet(args) -> int:
    from hwprof.presentation.console import print_warning
    from hwprof.running.fleet import FleetOptions, run_fleet
    if args.local_nodes and args.address == "auto":
        args.address = "local"
    opts = FleetOptions(suite=args.suite, address=args.address, local_nodes=args.local_nodes, per=args.per,
                        out_dir=args.out, resume=args.resume, retries=args.retries,
                        run_kwargs=_measure_kwargs(args), command=["hwprof", *sys.argv[1:]])
    run_dir, results, meta = run_fleet(opts, notify=print_warning)
    if not args.no_report:
        from hwprof.presentation.report import render_report
        render_report(run_dir)
    counts = results["status"].value_counts().to_dict()
    print(f"fleet: {len(meta['fleet']['tasks'])} tasks, {len(results)} rows ({counts.get('ok', 0)} ok, "
          f"{counts.get('unsupported', 0)} unsupported, {counts.get('error', 0)} error)")
    print(f"run directory: {visible(run_dir)}")
    return 0


def cmd_devices(args) -> int:
    from hwprof.measuring.inventory import survey
    from hwprof.presentation.console import print_devices
    from hwprof.running.roofs import load_cached
    from hwprof.measuring.cpu import cpu_peak_table
    surveys = survey(args.cpu_tdp_watts)
    roofs = [load_cached(s.info, lambda text: print(f"hwprof: warning: {visible(text)}", file=sys.stderr))
             for s in surveys]
    for sv, r in zip(surveys, roofs):          # a CPU's peak clock: no slower than its cached roofs need
        if sv.info.kind == "cpu" and sv.info.cpu is not None and r is not None:
            sv.info.peaks, _ = cpu_peak_table(sv.info.cpu, {p: c.flops_per_s for p, c in r.compute.items() if c.flops_per_s})
    print_devices(surveys, roofs=roofs)
    import importlib.metadata
    from hwprof.kernels.quantized import torchao_version
    from hwprof.kernels.schemes import INSTALL
    from hwprof.running.fleet import INSTALL as FLEET_INSTALL
    tao = torchao_version()
    print(f"quantization schemes: {'torchao ' + tao if tao else 'torchao not installed: ' + INSTALL}")
    try:
        print(f"fleet runs: ray {importlib.metadata.version('ray')}")
    except importlib.metadata.PackageNotFoundError:
        print(f"fleet runs: ray not installed: {FLEET_INSTALL}")
    return 0


def cmd_report(args) -> int:
    from hwprof.analysis.models import write_models
    from hwprof.presentation.report import render_report
    from hwprof.running.results import read_results
    from hwprof.running.rundir import read_run_json
    meta = read_run_json(args.run_dir)            # first: it says best when the directory is not a run
    models = write_models(args.run_dir, read_results(args.run_dir / "results.csv"), meta)
    paths = ([models] if models else []) + render_report(args.run_dir)
    for p in paths:
        print(visible(p))
    return 0


def cmd_compare(args) -> int:
    from hwprof.analysis.compare import compare_runs, write_comparison
    from hwprof.presentation.console import print_comparison
    cmp = compare_runs(args.run_a, args.run_b, allow_unlike=args.allow_unlike)
    out = args.out or args.run_b
    paths = write_comparison(cmp, Path(out), args.run_a, args.run_b)
    print_comparison(cmp)
    for p in paths:
        print(visible(p))
    return 0


def cmd_forecast(args) -> int:
    from hwprof.analysis.forecast_table import SCENARIO_KEYS, load_scenario, write_forecast
    from hwprof.presentation.report import render_report
    scenario = load_scenario(args.scenario, {k: getattr(args, k, None) for k in SCENARIO_KEYS})
    paths = write_forecast(args.run_dir, scenario, model=args.model, phase=args.phase)
    report = render_report(args.run_dir)
    for p in paths + [p for p in report if p.name in ("forecast.png", "report.html", "report.md")]:
        print(visible(p))
    return 0


def _validate_model(args, device) -> int:
    from hwprof.analysis.validate_model import validate_model
    from hwprof.kernels import hf
    from hwprof.kernels.model import PHASES
    from hwprof.presentation.console import print_model_validation, progress_bar
    if hf.transformers_version() is None:
        raise BadInput(f"validate --model compares with Hugging Face transformers, which is not installed: {hf.INSTALL}")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    bad = [p for p in precisions if p not in ("fp64", "fp32", "fp16", "bf16")]
    if not precisions or bad:
        raise BadInput(f"--precisions {args.precisions!r}: use fp64, fp32, fp16 or bf16, comma-separated")
    try:
        with progress_bar(len(precisions) * len(PHASES), 0, label="validating") as listener:
            checks = validate_model(args.model, device, precisions, progress=listener.advance)
    except ValueError as e:
        raise BadInput(str(e)) from None
    print_model_validation(str(device), checks)
    return 1 if any(c.verdict == "fail" for c in checks) else 0


def cmd_claims(args) -> int:
    from hwprof.analysis.claims import check_claims
    from hwprof.analysis.models import model_table
    from hwprof.presentation.console import print_claims
    from hwprof.running.results import read_results
    from hwprof.running.rundir import read_run_json
    meta = read_run_json(args.run_dir)
    df = read_results(args.run_dir / "results.csv")
    print_claims(check_claims(df, meta, model_table(df, meta)))
    return 0


def cmd_validate(args) -> int:
    from hwprof.analysis.validate import planned_checks, run_validation
    from hwprof.measuring.devices import resolve_device
    from hwprof.presentation.console import print_validation, progress_bar
    device = resolve_device(args.device)
    if args.model is not None:
        return _validate_model(args, device)
    with progress_bar(planned_checks(device, args.quick), 0, label="validating") as listener:
        checks = run_validation(device, quick=args.quick, progress=listener.advance)
    print_validation(str(device), checks)
    return 1 if any(c.verdict == "fail" for c in checks) else 0
