"""The command line: exit codes, one-line errors, no tracebacks."""
import subprocess
import sys
from pathlib import Path

import pytest

from hwprof.presentation.cli import main


@pytest.mark.parametrize("argv,needle", [
    (["run", "--suite", "nope"], "not a preset"),
    (["run", "--device", "tpu"], "device 'tpu'"),
    (["run", "--device", "cuda:3"], "cuda"),
    (["run", "--energy", "magic", "--suite", "quick"], "--energy"),
    (["report", "/nonexistent/run"], "not a directory"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path)] if argv[0] == "run" else [])) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_suite_file_and_precision(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[matmul]]\nshapes = [[8, 8, 8]]\nprecisions = ['fp128']\n")
    assert main(["run", "--suite", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown precision 'fp128'" in err and str(bad) in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[[matmul\n")
    assert main(["run", "--suite", str(broken), "--out", str(tmp_path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert list(tmp_path.glob("*-*")) == []                 # nothing written for bad input


@pytest.mark.parametrize("argv", [["run", "--budget-s", "-1"], ["run", "--threads", "0"], ["bogus"]])
def test_argparse_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_and_report_from_the_command_line(tiny_suite, tmp_path):
    out = tmp_path / "reports"
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-m", "hwprof", "run", "--suite", str(tiny_suite), "--out", str(out),
                           "--energy", "none", "--quiet", "--quiet-check-s", "0"], capture_output=True, text=True, timeout=300, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    run_dir = next(out.iterdir())
    for name in ("results.csv", "run.json", "report.html", "report.md", "plots/hef.png"):
        assert (run_dir / name).exists(), name
    assert main(["report", str(run_dir)]) == 0


def test_devices_lists_cpu_and_its_meter(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "cpu" in out and "energy meter" in out
    assert "quantization schemes: torchao" in out and "fleet runs: ray" in out


def test_devices_names_the_processor_beyond_its_model_name(capsys, monkeypatch):
    import dataclasses

    from hwprof.measuring import devices
    real = devices.cpu_info
    monkeypatch.setattr(devices, "cpu_info", lambda: dataclasses.replace(
        real(), vendor="AuthenticAMD", microarch="cpu family 26 model 2 stepping 1"))
    assert main(["devices"]) == 0
    assert "AuthenticAMD cpu family 26 model 2 stepping 1" in capsys.readouterr().out


def test_devices_shows_this_machines_cached_roofs(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HWPROF_CACHE_DIR", str(tmp_path))
    assert main(["devices"]) == 0
    assert "none cached for this machine yet" in capsys.readouterr().out
    import torch
    from hwprof.measuring.devices import describe
    from hwprof.measuring.timing import CpuTimer
    from hwprof.running.roofs import get_roofs
    get_roofs(describe(torch.device("cpu")), torch.device("cpu"), CpuTimer(), ["fp32", "tf32"],
              budget_per_precision_s=0.2)
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "memory roof" in out and "roof fp32" in out and "none: tf32" in out


def test_a_model_run_writes_models_csv_a_report_section_and_claims(tmp_path, capsys):
    suite = tmp_path / "m.toml"
    suite.write_text('budget_s = 0.05\nci_target = 0.5\nwarmup_s = 0.0\nmin_window_s = 0.0\nrounds = 3\nround_s = 0.0\n'
                     '[[model]]\nname = "micro"\nd_model = 64\nn_layers = 2\nn_heads = 4\nn_kv_heads = 2\nd_ff = 128\n'
                     'vocab = 256\nseq_len = 16\nprecisions = ["fp32", "bf16"]\n')
    out = tmp_path / "runs"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--energy", "estimate", "--quiet",
                 "--quiet-check-s", "0", "--no-roofs", "--no-history"]) == 0
    run_dir = next(out.iterdir())
    import json

    import pandas as pd
    assert "machine_history" not in json.loads((run_dir / "run.json").read_text())
    models = pd.read_csv(run_dir / "models.csv")
    assert models["status"].tolist() == ["ok"] * 4 and (models["tokens_per_s"] > 0).all()
    assert list(models["phase"]) == ["prefill", "decode"] * 2 and (models["layers_measured"] == 2).all()
    assert models["predicted_time_s_per_token"].notna().all() and models["unexplained_share"].notna().all()
    assert (run_dir / "model_breakdown.csv").exists() and (run_dir / "plots" / "tokens.png").exists()
    results = pd.read_csv(run_dir / "results.csv")
    assert (results["model"] == "micro").all()
    md = (run_dir / "report.md").read_text()
    assert "## Models" in md and "2 of 2 layers measured whole" in md and "## Claims" in md
    assert "not compared with this machine's history" in md
    capsys.readouterr()
    assert main(["claims", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert "Lower-precision tensor formats" in text and "not measurable from kernel timings" in text
    assert main(["forecast", str(run_dir), "--model", "micro"]) == 0
    assert json.loads((run_dir / "forecast.json").read_text())["phase"] == "decode"
    assert main(["forecast", str(run_dir), "--model", "micro", "--phase", "prefill"]) == 0
    assert main(["forecast", str(run_dir), "--model", "nano"]) == 2
