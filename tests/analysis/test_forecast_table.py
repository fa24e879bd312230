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
    df = hwprof.run_suite(str(tmp / "tiny.toml"), out_dir=tmp / "r", energy="estimate", idle_s=0.0, quiet_check_s=0.0,
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


def test_a_forecast_that_overflows_writes_nothing_and_keeps_the_last_pair(run_dir, capsys):
    assert main(["forecast", run_dir, "--years", "5"]) == 0
    before = {name: open(f"{run_dir}/{name}").read() for name in ("forecast.csv", "forecast.json")}
    capsys.readouterr()
    assert main(["forecast", run_dir, "--years", "1e6", "--doublings-per-year", "5"]) == 2
    err = capsys.readouterr().err
    assert "overflows" in err and "nothing was written" in err and len(err.strip().splitlines()) == 1
    assert {name: open(f"{run_dir}/{name}").read() for name in before} == before


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
    df = hwprof.run_suite(str(tmp_path / "t.toml"), out_dir=tmp_path / "r", energy="none", idle_s=0.0, quiet_check_s=0.0,
                            device_warmup_s=0.0)
    with pytest.raises(BadInput, match="logical_flops_per_j"):
        from hwprof.analysis.forecast_table import write_forecast
        write_forecast(df.attrs["run_dir"], Scenario())


def _df(e0=1e10, doublings=1.0, rate=1e11):
    import pandas as pd
    return pd.DataFrame([{"config_id": "c", "status": "ok", "logical_flops_per_j": e0, "energy_source": "rapl",
                          "doublings_energy": doublings, "logical_flops_per_s": rate}])


def test_per_configuration_arithmetic_follows_the_formulas():
    import math
    from hwprof.analysis import forecast as fc
    from hwprof.analysis.forecast_table import forecast_rows
    s = Scenario(power_watts=500.0, years=4.0, doublings_per_year=0.5, kappa=None, law="chinchilla",
                 target_ratio=0.5, train_params=1e9, train_tokens=2e10).validate()
    (r,) = forecast_rows(_df(e0=2e10, doublings=1.5), s)
    year = 2e10 * 500.0 * 365.25 * 24 * 3600
    cum = 1 + (2 ** (0.5 * 4) - 1) / (0.5 * math.log(2))
    assert r["compute_per_year_start"] == pytest.approx(year, rel=1e-12)
    assert r["compute_per_year_end"] == pytest.approx(year * 4.0, rel=1e-12)
    assert r["cumulative_compute_years"] == pytest.approx(cum, rel=1e-12)
    assert r["cumulative_flops"] == pytest.approx(year * cum, rel=1e-12)
    kappa = fc.ChinchillaLaw().kappa
    assert r["excess_loss_ratio"] == pytest.approx(cum ** -kappa, rel=1e-12)
    law = fc.ChinchillaLaw()
    assert r["loss_end"] == pytest.approx(law.optimal_loss(year * cum), rel=1e-9)   # the law's own kappa
    assert r["years_of_progress"] == pytest.approx(1.5 / 0.5)
    assert r["train_flops"] == 6 * 1e9 * 2e10
    assert r["train_time_s"] == pytest.approx(1.2e20 / 1e11) and r["train_energy_j"] == pytest.approx(1.2e20 / 2e10)


def test_a_given_kappa_is_used_for_losses_and_x_alike():
    from hwprof.analysis import forecast as fc
    from hwprof.analysis.forecast_table import forecast_rows
    s = Scenario(years=10.0, doublings_per_year=1.0, kappa=0.05, law="chinchilla").validate()
    (r,) = forecast_rows(_df(), s)
    x = r["excess_loss_ratio"]
    assert x == pytest.approx(r["cumulative_compute_years"] ** -0.05)
    assert (r["loss_end"] - fc.ChinchillaLaw().E) == pytest.approx((r["loss_start"] - fc.ChinchillaLaw().E) * x)


def test_unreachable_target_and_zero_doublings_write_valid_json(tmp_path):
    import json
    from hwprof.analysis.forecast_table import forecast_rows, write_forecast
    from hwprof.running.results import ResultsWriter, Row, SCHEMA_VERSION
    from hwprof.running.rundir import write_json
    halving = Scenario(doublings_per_year=-1.0, target_ratio=0.01, years=5.0).validate()
    (r,) = forecast_rows(_df(), halving)
    assert r["years_to_target"] is None and r["years_to_target_note"].startswith("never")
    flat = Scenario(doublings_per_year=0.0, years=3.0).validate()
    (r0,) = forecast_rows(_df(), flat)
    assert r0["cumulative_compute_years"] == 4.0 and r0["years_of_progress"] is None
    w = ResultsWriter(tmp_path / "results.csv")
    w.append(Row(config_id="c", kernel="matmul", shape="8x8x8", precision="fp32", sparsity="dense", density=1.0,
                 backend="default", pass_="fwd", device="cpu", status="ok", logical_flops_per_j=1e10,
                 energy_source="rapl", doublings_energy=0.0, logical_flops_per_s=1e11))
    w.close()
    write_json(tmp_path / "run.json", {"tool": "hwprof", "schema_version": SCHEMA_VERSION})
    for sc in (halving, flat):
        _, json_path = write_forecast(tmp_path, sc)
        text = json_path.read_text()
        assert "Infinity" not in text and "NaN" not in text
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_plotted_curves_differ_between_configurations():
    import pandas as pd
    from hwprof.analysis.forecast_table import forecast_rows, trajectories
    df = pd.concat([_df(e0=1e10, doublings=0.0).assign(config_id="ref"), _df(e0=4e10, doublings=2.0).assign(config_id="x")])
    for law in ("chinchilla", None):
        s = Scenario(law=law, kappa=None if law else 0.1).validate()
        curves = trajectories(forecast_rows(df, s), s)
        key = "loss" if law else "excess_loss_ratio_vs_reference"
        assert curves[0][key] != curves[1][key]
