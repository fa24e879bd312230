"""hwprof validate --model: what it says where the two implementations differ (the profiled, alternating op
times and their words), how many profiled calls it affords, the models it accepts and refuses, and one
whole check of a small model against transformers where transformers is installed."""
import json

import pytest
import torch

from hwprof.analysis.validate_model import OUTSIDE, differences, op_times, profiled_calls, split, why
from hwprof.presentation.cli import main


def test_differences_name_the_largest_first_with_their_sign():
    ours = {"aten::mm": 0.004, "aten::cat": 0.001, OUTSIDE: 0.0005}
    theirs = {"aten::mm": 0.003, "aten::cat": 0.001, OUTSIDE: 0.0020, "aten::cumsum": 0.0001}
    words = differences(ours, theirs)
    assert words == (f"hwprof against transformers, per step: {OUTSIDE} -1.50 ms, aten::mm +1.00 ms, "
                     "aten::cumsum -0.10 ms")
    assert differences({"aten::mm": 1e-3}, {"aten::mm": 1e-3}) == ""


def test_why_splits_each_step_into_aten_ops_and_the_python_around_them():
    ours = {"aten::mm": 0.004, "aten::cat": 0.001, OUTSIDE: 0.0005}
    theirs = {"aten::mm": 0.004, "aten::cat": 0.001, OUTSIDE: 0.0015}
    assert split(ours) == (pytest.approx(0.005), 0.0005)
    # the same work in ops; transformers' 1 ms more outside them is 15.4% of its 6.5 ms profiled step
    assert why(split(ours), split(theirs)) == ("in aten ops hwprof / transformers = 1.000; outside them hwprof 0.50 ms, "
                                 "transformers 1.50 ms a step (+15.4% of its profiled step)")
    assert why(split(ours), split({})) == ""


def test_profiled_calls_fit_their_budget_within_bounds():
    assert profiled_calls(0.001) == 20 and profiled_calls(0.05) == 20
    assert profiled_calls(0.1) == 10 and profiled_calls(0.6) == 3 and profiled_calls(5.0) == 3


def test_op_times_attribute_each_sides_ops_to_that_side_alone():
    a, b = torch.randn(128, 128), torch.randn(128, 128)
    times = op_times({"hwprof": lambda: a @ b, "transformers": lambda: a + b}, calls=4)
    assert set(times) == {"hwprof", "transformers"}
    assert times["hwprof"].get("aten::mm", 0) > 0 and "aten::mm" not in times["transformers"]
    assert times["transformers"].get("aten::add", 0) > 0 and "aten::add" not in times["hwprof"]
    assert all(OUTSIDE in t and t[OUTSIDE] >= 0 for t in times.values())


def test_bad_model_names_and_files_exit_2_with_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    assert main(["validate", "--model", "no-such-model"]) == 2
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    assert main(["validate", "--model", str(bad)]) == 2
    bad.write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    assert main(["validate", "--model", str(bad)]) == 2
    assert main(["validate", "--model", "tiny", "--precisions", "int8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all("Traceback" not in line for line in err)


@pytest.mark.slow
def test_a_small_llama_checks_against_transformers_with_a_verdict_and_a_note(tmp_path):
    pytest.importorskip("transformers")
    from hwprof.analysis.validate_model import validate_model
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256, "tie_word_embeddings": False,
              "rms_norm_eps": 1e-6, "rope_theta": 500000.0}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    (check,) = validate_model(str(path), torch.device("cpu"), precisions=("fp32",), phases=("prefill",))
    assert check.phase == "prefill" and check.precision == "fp32" and check.rounds >= 1
    assert check.hwprof_s > 0 and check.transformers_s > 0 and 0.2 < check.ratio < 5
    assert check.verdict in ("pass", "fail") and check.note.startswith("in aten ops hwprof / transformers = ")
    assert "hwprof against transformers, per step" in check.note
    assert check.ops_ratio > 0 and all(t >= 0 for t in check.outside_s)
