"""Fleet analysis on a made-up fleet: spread per device model, leave-one-out outliers, the heat map's table."""
import pandas as pd
import pytest

from hwprof.analysis import fleet


def _fleet(times, energies=None, ci_low=None, cid="matmul/512x512x512/fp32/dense/fwd", name="NVIDIA H100 80GB HBM3"):
    rows, nodes = [], {}
    for i, t in enumerate(times):
        uuid = f"GPU-{i}"
        rows.append(dict(config_id=cid, status="ok", device_uuid=uuid, host=f"h{i // 4}", time_s_median=t,
                         time_s_ci_low=(ci_low or times)[i] if ci_low else t * 0.99,
                         energy_j=energies[i] if energies else None))
        nodes[f"gpu {i}"] = {"device_uuid": uuid, "device_name": name}
    return pd.DataFrame(rows), {"nodes": nodes, "fleet": {"local_nodes": 0}}


def test_spread_over_devices_of_one_model():
    df, meta = _fleet([1.0, 1.0, 1.1, 0.9], energies=[2.0, 2.0, 2.0, 2.0])
    (s,) = fleet.spread(df, meta)
    assert (s.devices, s.time_min, s.time_median, s.time_max) == (4, 0.9, 1.0, 1.1)
    assert s.time_cv == pytest.approx(pd.Series([1.0, 1.0, 1.1, 0.9]).std() / 1.0)
    assert s.energy_cv == 0.0 and s.device_name == "NVIDIA H100 80GB HBM3"


def test_a_slow_device_is_named_against_its_siblings_median():
    times = [1.0, 1.01, 0.99, 1.0, 1.0, 1.02, 0.98, 1.08]             # the eighth GPU is 8% slower
    df, meta = _fleet(times, ci_low=[t * 0.99 for t in times])
    (o,) = fleet.outliers(df, meta)
    assert o.device_uuid == "GPU-7" and o.metric == "time" and o.host == "h1"
    assert o.excess == pytest.approx(1.08 / 1.0 - 1) and o.beyond_ci            # 1.069 > the siblings' 1.0


def test_five_percent_is_the_line_and_a_wide_interval_is_said():
    df, meta = _fleet([1.0, 1.0, 1.04], ci_low=[1.0, 1.0, 0.95])
    assert fleet.outliers(df, meta) == []                               # 4% slower: within the line
    df, meta = _fleet([1.0, 1.0, 1.06], ci_low=[1.0, 1.0, 0.95])
    (o,) = fleet.outliers(df, meta)
    assert not o.beyond_ci                                               # slower, but its interval reaches the median


def test_energy_outliers_and_different_models_kept_apart():
    df, meta = _fleet([1.0, 1.0, 1.0], energies=[1.0, 1.0, 1.2])
    assert [(o.device_uuid, o.metric) for o in fleet.outliers(df, meta)] == [("GPU-2", "energy")]
    a, ma = _fleet([1.0, 1.0], name="A100")
    b, mb = _fleet([2.0], name="L4")
    b["device_uuid"] = "GPU-9"
    mb = {"nodes": {"x": {"device_uuid": "GPU-9", "device_name": "L4"}}}
    both = pd.concat([a, b])
    meta = {"nodes": {**ma["nodes"], **mb["nodes"]}}
    assert fleet.outliers(both, meta) == [] and {s.device_name for s in fleet.spread(both, meta)} == {"A100", "L4"}


def test_heat_map_table_is_time_over_the_fleet_median():
    df, meta = _fleet([1.0, 2.0, 4.0])
    t = fleet.normalised(df, meta)
    assert t.shape == (3, 1) and list(t.iloc[:, 0]) == [0.5, 1.0, 2.0]
    assert fleet.normalised(df[df.status == "x"], meta).empty
