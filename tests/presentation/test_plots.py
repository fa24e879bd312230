import pandas as pd

from hwprof.presentation import plots


def _df():
    base = dict(kernel="matmul", shape="64x64x64", pass_="fwd", status="ok", backend="default", energy_source="rapl")
    rows = [dict(base, precision="fp32", sparsity="dense", density=1.0, hef_time=1.0, hef_energy=1.0, rel_error=1e-7,
                 arithmetic_intensity=10.0, logical_flops_per_s=1e11),
            dict(base, precision="bf16", sparsity="dense", density=1.0, hef_time=2.0, hef_energy=2.5, rel_error=3e-3,
                 arithmetic_intensity=20.0, logical_flops_per_s=2e11),
            dict(base, precision="fp32", sparsity="unstructured", density=0.1, hef_time=1.5, hef_energy=1.4,
                 rel_error=1e-7, arithmetic_intensity=10.0, logical_flops_per_s=1.5e11),
            dict(base, precision="fp32", sparsity="unstructured", density=0.5, hef_time=0.5, hef_energy=0.5,
                 rel_error=1e-7, arithmetic_intensity=10.0, logical_flops_per_s=0.5e11)]
    for r in rows:
        r.update(bytes_moved=3 * 64 * 64 * 4, physical_flops=int(2 * 64 ** 3 * r["density"]),
                 physical_flops_per_s=r["logical_flops_per_s"] * r["density"], roof_frac=0.5)
    return pd.DataFrame(rows).rename(columns={"pass_": "pass"})


def test_each_plot_draws_from_a_run_and_saves(tmp_path):
    df = _df()
    figs = {"hef": plots.hef_bars(df), "roof": plots.roofline(df, {"fp32": {"flops_per_s": 1e12}}, 1e11),
            "acc": plots.accuracy_vs_efficiency(df), "sp": plots.sparsity_curve(df)}
    for name, fig in figs.items():
        assert fig is not None, name
        assert plots.save(fig, tmp_path / f"{name}.png") and (tmp_path / f"{name}.png").stat().st_size > 1000


def test_nothing_to_plot_gives_none():
    empty = _df().assign(status="error")
    assert plots.hef_bars(empty) is None and plots.roofline(empty, {}, None) is None
    assert plots.sparsity_curve(empty) is None and plots.accuracy_vs_efficiency(empty) is None
    assert plots.forecast_curves({}) is None and not plots.save(None, "x.png")


def test_hef_bars_show_one_bar_per_configuration_and_resource():
    fig = plots.hef_bars(_df())
    ax = fig.axes[0]
    assert len(ax.patches) == 8            # four rows, time and energy
    assert sorted(round(p.get_width(), 6) for p in ax.patches)[:2] == [0.5, 0.5]


def test_roofline_draws_measured_roofs_solid_datasheet_roofs_dashed_and_numbers_every_point():
    roofs = {"memory": {"bytes_per_s": 1e10}, "compute": {"fp32": {"flops_per_s": 2e11}, "bf16": {"flops_per_s": 4e11},
                                                           "int8": {"flops_per_s": 9e11}}}
    fig = plots.roofline(_df(), {"fp32": {"flops_per_s": 1e12}}, 1e11, roofs)
    ax = fig.axes[0]
    lines = {l.get_label(): l for l in ax.get_lines()}
    assert lines["measured roof fp32"].get_linestyle() == "-" and lines["datasheet fp32"].get_linestyle() == "--"
    assert "measured roof bf16" in lines and "measured roof int8" not in lines     # only precisions in the run
    x, y = lines["measured roof fp32"].get_data()
    assert max(y) == 2e11 and min(y) == min(x) * 1e10                           # min(compute, I x memory)
    numbers = sorted(int(t.get_text()) for t in ax.texts)
    assert numbers == [1, 2, 3, 4]
    labels = [t.xyann[1] for t in ax.texts]                                      # label heights
    import math
    logs = sorted(math.log10(v) for v in labels)
    assert all(b - a >= 0.05 - 1e-12 for a, b in zip(logs, logs[1:]))           # no two labels on one another
    key = fig.axes[1].texts[0].get_text()
    assert "bf16" in key and "50% of roof" in key


def test_spread_labels_keeps_order_and_gap():
    assert plots._spread_labels([1.0, 1.0, 3.0, 1.02], 0.1) == [1.0, 1.1, 3.0, 1.2000000000000002]
