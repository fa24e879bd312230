import json

import pytest

import hwprof
from hwprof.presentation.cli import main
from hwprof.errors import BadInput
from hwprof.analysis.forecast_table import Scenario, load_scenario


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tests.conftest import TINY_SUITE
    tmp = tmp_path_factory.mktemp("fc")
    (tmp / "tiny.toml").write_text(TINY_SUITE)
    df = hwprof.run_suite(str(tmp / "tiny.toml"), out_dir=tmp / "r", energy="estimate", idle_s=0.0,
                            device_warmup_s=0.0)
    return df.attrs["run_dir"]


def test_forecast_writes_documented_csv_json_and_plot(run_dir, capsys):
    assert main(["forecast", run_dir, "--years", "20", "--doublings-per-year", "0.5",
                 "--train-params", "1e9", "--train-tokens", "2e10"]) == 0
    doc = json.loads(open(f"{run_dir}/forecast.json").read())
    assert doc["scenario"]["years"] == 20 and doc["scenario"]["kappa"] == pytest.approx(0.1535, abs=1e-3)
    rows = doc["configurations"]
    assert rows and all(set(r) <= set(doc["fields"]) for r in rows)
    ref = next(r for r in rows if r["config_id"] == "matmul/64x64x64/fp32/dense/fwd")
    assert ref["doublings"] == 0.0 and ref["years_of_progress"] == 0.0
    assert ref["loss_end"] < ref["loss_start"]
    assert ref["train_flops"] == 1.2e20
    assert (__import__("pathlib").Path(run_dir) / "plots" / "forecast.png").stat().st_size > 1000
    assert "Forecast" in open(f"{run_dir}/report.md").read()


@pytest.mark.parametrize("flags,needle", [
    (["--power-watts", "-1"], "power_watts must be positive"),
    (["--kappa", "0"], "kappa must be positive"),
    (["--kappa", "-0.2"], "kappa must be positive"),
    (["--target-ratio", "0"], "outside (0, 1]"),
    (["--target-ratio", "1.5"], "outside (0, 1]"),
    (["--years", "0"], "years must be positive"),
    (["--train-params", "1e9"], "both train_params and train_tokens"),
])
def test_bad_scenarios_exit_2(run_dir, flags, needle, capsys):
    assert main(["forecast", run_dir, *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_scenario_toml(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("power_watts = 700\nyears = 5\nkappa = 0.063\n")
    s = load_scenario(p, {"years": None})
    assert s.power_watts == 700 and s.law is None and s.effective_kappa == 0.063
    p.write_text("watts = 3\n")
    with pytest.raises(BadInput, match="unknown key"):
        load_scenario(p)
    p.write_text("years = [\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        load_scenario(p)


def test_forecast_needs_energy(tmp_path):
    from tests.conftest import TINY_SUITE
    (tmp_path / "t.toml").write_text(TINY_SUITE)
    df = hwprof.run_suite(str(tmp_path / "t.toml"), out_dir=tmp_path / "r", energy="none", idle_s=0.0,
                            device_warmup_s=0.0)
    with pytest.raises(BadInput, match="logical_flops_per_j"):
        from hwprof.analysis.forecast_table import write_forecast
        write_forecast(df.attrs["run_dir"], Scenario())
