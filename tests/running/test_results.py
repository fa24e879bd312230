import pytest

from hwprof.errors import BadInput
from hwprof.running.results import ALL_COLUMNS, COLUMNS, ResultsWriter, Row, drop_rows, read_results

CONTRACT = ("config_id, kernel, shape, precision, sparsity, density, backend, pass, device, status, reason, "
            "logical_flops, physical_flops, time_s_median, time_s_ci_low, time_s_ci_high, time_rel_iqr, repeats, "
            "energy_j, power_w, energy_source, logical_flops_per_s, physical_flops_per_s, logical_flops_per_j, "
            "hef_time, hef_energy, doublings_time, doublings_energy, peak_flops_per_s, mfu, rel_error, flags")


def test_columns_are_the_design_contract_in_order():
    assert COLUMNS == CONTRACT.split(", ")
    assert ALL_COLUMNS[: len(COLUMNS)] == COLUMNS
    assert list(Row("a", "matmul", "1x1x1", "fp32", "dense", 1.0, "default", "fwd", "cpu", "ok").as_dict()) == ALL_COLUMNS


def row(i: int) -> Row:
    return Row(f"id{i}", "matmul", "8x8x8", "fp32", "dense", 1.0, "default", "fwd", "cpu", "ok",
               logical_flops=1024, time_s_median=1e-6 * (i + 1), reason="has, comma \"quoted\"")


def test_writer_appends_and_reader_round_trips(tmp_path):
    path = tmp_path / "results.csv"
    w = ResultsWriter(path)
    w.append(row(0))
    w.append(row(1))
    w.close()
    df = read_results(path)
    assert list(df.columns) == ALL_COLUMNS
    assert df["config_id"].tolist() == ["id0", "id1"]
    assert df["reason"][0] == "has, comma \"quoted\""
    assert df["logical_flops"][0] == 1024


def test_truncated_last_line_is_dropped_on_read_and_on_append(tmp_path):
    path = tmp_path / "results.csv"
    w = ResultsWriter(path)
    w.append(row(0))
    w.append(row(1))
    w.close()
    data = path.read_bytes()
    path.write_bytes(data[:-25])                 # power loss in the middle of the last row
    assert read_results(path)["config_id"].tolist() == ["id0"]
    w = ResultsWriter(path)                      # resume appends after the last complete line
    w.append(row(2))
    w.close()
    assert read_results(path)["config_id"].tolist() == ["id0", "id2"]


def test_not_a_results_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(BadInput, match="not a hwprof results.csv"):
        read_results(p)


def test_added_columns_follow_the_contract_in_the_documented_order():
    """The README's results.csv table lists these, appended after the contract and never reordered."""
    assert ALL_COLUMNS[len(COLUMNS):] == [
        "pruning_error", "bytes_moved", "arithmetic_intensity", "peak_source", "batch", "window_s",
        "clock_mhz_start", "clock_mhz_end", "temp_c_start", "temp_c_end",
        "cpu_other_cores", "cpu_steal_frac", "hef_time_ci_low", "hef_time_ci_high", "hef_energy_ci_low",
        "hef_energy_ci_high", "rounds", "roof_flops_per_s", "roof_frac", "weight_bytes", "model", "host", "node_id",
        "device_uuid", "hef_time_run_sd", "rounds_remeasured", "hef_energy_run_sd", "impl", "cost_s"]


def test_a_results_file_from_before_the_trust_columns_still_reads(tmp_path):
    """Run directories written before the columns were added (reports/examples of older versions)."""
    old = ",".join(COLUMNS) + "\n" + ",".join(["x"] + [""] * (len(COLUMNS) - 1)) + "\n"
    (tmp_path / "results.csv").write_text(old)
    df = read_results(tmp_path / "results.csv")
    assert df["config_id"].tolist() == ["x"]
    assert Row.from_record(df.to_dict("records")[0]).hef_time_ci_low is None


def test_resuming_a_run_written_before_columns_were_appended_upgrades_its_header(tmp_path):
    path = tmp_path / "results.csv"
    older = ALL_COLUMNS[:ALL_COLUMNS.index("roof_flops_per_s")]
    import csv
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=older, extrasaction="ignore")
        writer.writeheader()
        writer.writerow({k: ("" if v is None else v) for k, v in row(0).as_dict().items()})
    w = ResultsWriter(path)
    w.append(row(1))
    w.close()
    df = read_results(path)
    assert list(df.columns) == ALL_COLUMNS and df["config_id"].tolist() == ["id0", "id1"]
    assert df["time_s_median"].tolist() == [1e-6, 2e-6] and df["roof_frac"].isna().all()


def test_drop_rows_removes_only_the_matching_rows_atomically(tmp_path):
    path = tmp_path / "results.csv"
    w = ResultsWriter(path)
    for i in range(3):
        w.append(row(i))
    w.close()
    assert drop_rows(path, lambda r: r["config_id"] == "id1") == 1
    df = read_results(path)
    assert df["config_id"].tolist() == ["id0", "id2"] and df["reason"][1] == "has, comma \"quoted\""
    before = path.read_bytes()
    assert drop_rows(path, lambda r: False) == 0 and path.read_bytes() == before
    assert not (tmp_path / "results.csv.tmp").exists()
