"""End-to-end runs of a tiny suite on the CPU."""
import math

import pandas as pd
import pytest
import torch

import hwprof
from hwprof.running.results import ALL_COLUMNS
from hwprof.running.runner import RunOptions, execute

RATE_COLUMNS = ["time_s_median", "time_s_ci_low", "time_s_ci_high", "time_rel_iqr", "repeats",
                "logical_flops_per_s", "physical_flops_per_s", "hef_time", "doublings_time", "rel_error"]


def test_tiny_run_end_to_end(tiny_suite, fast_options):
    df = hwprof.run_suite(str(tiny_suite), **fast_options)
    assert list(df.columns) == ALL_COLUMNS
    by_id = df.set_index("config_id")
    ref = by_id.loc["matmul/64x64x64/fp32/dense/fwd"]
    assert ref["status"] == "ok" and ref["hef_time"] == 1.0 and ref["doublings_time"] == 0.0
    assert ref["logical_flops"] == 2 * 64 ** 3
    tf32 = by_id.loc["matmul/64x64x64/tf32/dense/fwd"]
    assert tf32["status"] == "unsupported" and "tensor-core" in tf32["reason"]
    eff = by_id.loc["attention/1x2x32x32x16/fp32/causal/efficient/fwd"]
    assert eff["status"] == "unsupported" and "only on CUDA" in eff["reason"]
    ok = df[df["status"] == "ok"]
    assert len(ok) == 5
    for col in RATE_COLUMNS:
        assert ok[col].notna().all(), col
    assert (ok["time_s_ci_low"] <= ok["time_s_median"]).all() and (ok["time_s_median"] <= ok["time_s_ci_high"]).all()
    fp64 = by_id.loc["matmul/64x64x64/fp64/dense/fwd"]
    # paired with the reference in rounds: hef inside its interval over rounds, consistent with the rows' times
    assert fp64["hef_time_ci_low"] <= fp64["hef_time"] <= fp64["hef_time_ci_high"] and fp64["rounds"] >= 7
    assert 0.2 < fp64["hef_time"] / (ref["time_s_median"] / fp64["time_s_median"]) < 5
    assert ref["hef_time_ci_low"] == ref["hef_time_ci_high"] == 1.0
    att = by_id.loc["attention/1x2x32x32x16/fp32/causal/flash/fwd"]
    assert att["density"] == pytest.approx((32 * 33 / 2) / 32 ** 2) and att["sparsity"] == "causal"
    assert att["physical_flops"] < att["logical_flops"]
    loaded = hwprof.load_run(df.attrs["run_dir"])
    pd.testing.assert_frame_equal(loaded, df, check_like=False)
    meta = loaded.attrs["meta"]
    assert meta["status"] == "complete" and meta["suite"]["name"] == "tiny"
    for key in ("torch", "python", "host", "os", "device_description", "energy", "idle_power_w", "peak_table",
                "seed", "started", "ended", "command", "schema_version", "threads"):
        assert key in meta, key


def test_estimate_meter_fills_energy_columns(tiny_suite, fast_options):
    df = hwprof.run_suite(str(tiny_suite), **(fast_options | {"energy": "estimate"}))
    ok = df[df["status"] == "ok"]
    assert (ok["energy_source"] == "estimate").all()
    assert ok["flags"].str.contains("estimate").all()
    assert ok["energy_j"].gt(0).all() and ok["logical_flops_per_j"].gt(0).all() and ok["hef_energy"].notna().all()


def test_failure_in_one_configuration_keeps_the_others(tiny_suite, fast_options, monkeypatch):
    from hwprof import kernels
    real = kernels.build_case

    def flaky(spec, device, seed=0, **kw):
        if spec.precision == "fp64":
            raise RuntimeError("injected failure\nsecond line")
        if spec.kernel == "attention" and spec.backend == "flash":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(spec, device, seed, **kw)

    monkeypatch.setattr(kernels, "build_case", flaky)
    df = hwprof.run_suite(str(tiny_suite), **fast_options).set_index("config_id")
    assert df.loc["matmul/64x64x64/fp64/dense/fwd", "status"] == "error"
    assert df.loc["matmul/64x64x64/fp64/dense/fwd", "reason"] == "RuntimeError: injected failure"
    assert df.loc["attention/1x2x32x32x16/fp32/causal/flash/fwd", "reason"].startswith("out of memory")
    assert df.loc["matmul/64x64x64/int8/dense/fwd", "status"] == "ok"        # after the failure
    assert math.isnan(df.loc["matmul/64x64x64/fp64/dense/fwd", "time_s_median"])


def test_nan_output_becomes_an_error_row_without_rates(tiny_suite, fast_options, monkeypatch):
    from hwprof import kernels
    real = kernels.build_case

    def poisoned(spec, device, seed=0, **kw):
        case, out = real(spec, device, seed, **kw)
        if spec.precision == "int8" and out is not None:
            return case, out.float() * float("nan")
        return case, out

    monkeypatch.setattr(kernels, "build_case", poisoned)
    df = hwprof.run_suite(str(tiny_suite), **fast_options).set_index("config_id")
    row = df.loc["matmul/64x64x64/int8/dense/fwd"]
    assert row["status"] == "error" and "NaN" in row["reason"] and "nonfinite" in row["flags"]
    assert math.isnan(row["logical_flops_per_s"])


def test_meter_that_stops_answering_is_an_error_row(tiny_suite, fast_options, monkeypatch):
    """A failure inside one configuration's measuring window (here the meter) loses that row only."""
    from hwprof.measuring.meters.base import MeterError
    from hwprof import kernels
    from hwprof.measuring.rounds import Family
    real_build, real_window = kernels.build_case, Family._window
    dying = set()

    def build(spec, *a, **kw):
        case, out = real_build(spec, *a, **kw)
        if spec.precision == "int8":
            dying.add(case.run)
        return case, out

    def window(self, arm):
        if arm.fn in dying:
            raise MeterError("energy meter rapl stopped answering: [Errno 5] Input/output error")
        return real_window(self, arm)

    monkeypatch.setattr(kernels, "build_case", build)
    monkeypatch.setattr(Family, "_window", window)
    df = hwprof.run_suite(str(tiny_suite), **fast_options).set_index("config_id")
    errors = df[df["status"] == "error"]
    assert list(errors.index) == ["matmul/64x64x64/int8/dense/fwd"] and "stopped answering" in errors["reason"].iloc[0]
    assert (df["status"] == "ok").sum() == 4
    assert df.loc["matmul/64x64x64/fp64/dense/fwd", "hef_time_ci_low"] > 0     # its neighbour stays paired


def test_configuration_larger_than_free_memory_is_skipped_without_allocating(tiny_suite, fast_options, monkeypatch):
    import hwprof.running.cases as cases
    monkeypatch.setattr(cases, "free_memory", lambda device: 1024)
    df = hwprof.run_suite(str(tiny_suite), **fast_options)
    supported = df[df["status"] != "unsupported"]
    assert (df["status"] == "error").all() and df["reason"].str.contains("GiB free").all()
    assert len(supported) == len(df)


def test_resume_completes_only_the_missing_configurations(tiny_suite, fast_options):
    full = execute(RunOptions(suite=str(tiny_suite), **fast_options))
    run_dir = full.run_dir
    csv = run_dir / "results.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:3]))                        # header + 2 rows survived
    first_two = full.results["config_id"].tolist()[:2]
    again = execute(RunOptions(resume=run_dir, **fast_options))
    ids = again.results["config_id"].tolist()
    assert ids[:2] == first_two and sorted(ids) == sorted(full.results["config_id"])
    assert len(ids) == len(set(ids))
    ref = again.results.set_index("config_id").loc["matmul/64x64x64/fp64/dense/fwd"]
    assert ref["hef_time"] > 0                                # reference came from the first session
    assert len(again.meta["resumed"]) == 1


def test_roofs_are_measured_once_recorded_in_run_json_and_place_every_ok_row(tiny_suite, fast_options, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path / "cache"))
    first = execute(RunOptions(suite=str(tiny_suite), **fast_options))
    roofs = first.meta["roofs"]
    assert roofs["memory"]["bytes_per_s"] > 0 and "STREAM" in roofs["memory"]["method"]
    assert roofs["compute"]["fp32"]["flops_per_s"] > 0 and roofs["compute"]["tf32"]["flops_per_s"] is None
    assert set(roofs["compute"]) == {"fp32", "fp64", "tf32", "int8"} and not roofs["cached"]
    ok = first.results[first.results["status"] == "ok"]
    assert ok["roof_flops_per_s"].notna().all() and ok["roof_frac"].notna().all()
    assert (ok["roof_frac"] == ok["physical_flops_per_s"] / ok["roof_flops_per_s"]).all()
    second = execute(RunOptions(suite=str(tiny_suite), **fast_options))
    assert second.meta["roofs"]["cached"] and second.meta["roofs"]["compute"] == roofs["compute"]
    none = execute(RunOptions(suite=str(tiny_suite), roofs=False, **fast_options))
    assert "roofs" not in none.meta and none.results["roof_frac"].isna().all()


def test_scheme_rows_sit_beside_plain_dtypes_with_weight_bytes(tmp_path, fast_options):
    suite = tmp_path / "schemes.toml"
    suite.write_text('budget_s = 0.05\nci_target = 0.5\nwarmup_s = 0.0\nmin_window_s = 0.0\nrounds = 3\nround_s = 0.0\n'
                     '[[matmul]]\nshapes = [[16, 256, 256]]\nprecisions = ["fp32", "w8a16", "w4a16:g64"]\n')
    df = execute(RunOptions(suite=str(suite), roofs=False, **fast_options)).results.set_index("config_id")
    fp32 = df.loc["matmul/16x256x256/fp32/dense/fwd"]
    assert fp32["weight_bytes"] == 256 * 256 * 4
    w8 = df.loc["matmul/16x256x256/w8a16/dense/fwd"]
    assert w8["backend"] == "torchao" and w8["precision"] == "w8a16"
    if w8["status"] == "ok":                                 # torchao installed
        assert 0.25 <= w8["weight_bytes"] / fp32["weight_bytes"] < 0.27 and w8["rel_error"] < 0.02
        assert w8["logical_flops"] == fp32["logical_flops"] and w8["hef_time"] > 0
    else:
        assert w8["status"] == "unsupported" and "torchao" in w8["reason"]
    w4 = df.loc["matmul/16x256x256/w4a16:g64/dense/fwd"]
    assert w4["status"] in ("ok", "unsupported") and (w4["status"] == "ok" or "w4a16" in w4["reason"]
                                                       or "torchao" in w4["reason"])


def test_idle_power_is_taken_before_any_warm_up_and_a_cpu_warms_up_only_to_measure_roofs(tiny_suite, fast_options,
                                                                                          monkeypatch):
    """Idle power right after the quiet check (a device hot from the warm-up reads high); on a CPU whose roofs
    are cached the warm-up is skipped: building and warming the first block's cases keeps it busy for longer."""
    from hwprof.running import runner
    calls = []
    monkeypatch.setattr(runner, "idle_power", lambda meter, seconds: calls.append("idle") or 5.0)
    monkeypatch.setattr(runner, "device_warmup", lambda device, seconds: calls.append("warm-up"))
    monkeypatch.setattr(runner, "roofs_missing", lambda info, precisions, remeasure, warn: True)
    opts = dict(fast_options, roofs=False)
    execute(RunOptions(suite=str(tiny_suite), **opts))
    assert calls == ["idle"]                                   # no roofs to measure: no warm-up
    calls.clear()
    monkeypatch.setattr(runner, "_roofs", lambda s, notify: None)
    execute(RunOptions(suite=str(tiny_suite), **fast_options))
    assert calls == ["idle", "warm-up"]                       # roofs to measure: warmed up first, after idle
    calls.clear()
    monkeypatch.setattr(runner, "roofs_missing", lambda info, precisions, remeasure, warn: False)
    execute(RunOptions(suite=str(tiny_suite), **fast_options))
    assert calls == ["idle"]                                   # all cached


def test_torchao_is_imported_during_the_quiet_check_and_done_before_idle_power(tmp_path, fast_options, monkeypatch):
    """The imports (torchao about a second, scipy's quantiles for the history) overlap the quiet check's idle
    second, in a thread of their own; idle power waits for them."""
    import threading
    import time

    from hwprof.measuring.contention import QuietCheck
    from hwprof.running import runner
    suite = tmp_path / "s.toml"
    suite.write_text('budget_s = 0.05\nci_target = 0.5\nwarmup_s = 0.0\nmin_window_s = 0.0\nrounds = 2\n'
                     'round_s = 0.0\n[[matmul]]\nshapes = [[16, 32, 32]]\nprecisions = ["fp32", "w8a16"]\n')
    events = []

    def slow_import():
        time.sleep(0.2)
        events.append(("torchao", threading.current_thread().name))

    def check(cpus, seconds):
        events.append(("check", threading.current_thread().name))
        return QuietCheck(seconds, 0.0, 0.0, [])
    monkeypatch.setattr(runner, "torchao_version", slow_import)
    monkeypatch.setattr(runner, "import_quantiles", lambda: events.append(("quantiles", threading.current_thread().name)))
    monkeypatch.setattr(runner, "quiet_check", check)
    monkeypatch.setattr(runner, "idle_power", lambda meter, seconds: events.append(("idle", None)))
    execute(RunOptions(suite=str(suite), **dict(fast_options, quiet_check_s=0.01)))
    assert [e for e, _ in events] == ["check", "torchao", "quantiles", "idle"]   # the check does not wait for it
    assert dict(events)["torchao"] == dict(events)["quantiles"] == "hwprof-import"
    events.clear()
    execute(RunOptions(suite=str(suite), **dict(fast_options, quiet_check_s=0.0)))
    assert [e for e, _ in events] == ["idle"]                  # no quiet check: imported when needed
    events.clear()
    suite.write_text(suite.read_text().replace(', "w8a16"', ""))
    execute(RunOptions(suite=str(suite), **dict(fast_options, quiet_check_s=0.01, baseline=False)))
    assert [e for e, _ in events] == ["check", "idle"]         # no scheme rows, no history: nothing to import
