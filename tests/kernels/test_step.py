"""Whole steps as cases: precisions and schemes, sparsity, the hollow step, transformers' models from a
config.json, and what cannot be a step."""
import json

import pytest
import torch

from hwprof import kernels
from hwprof.kernels.model import ModelShape
from hwprof.kernels.spec import SparsitySpec
from hwprof.kernels.step import StepSpec

CPU = torch.device("cpu")
M = ModelShape("mini", 64, 2, 4, 2, 128, 256, 16)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("bf16", 3e-2)])
def test_a_step_builds_in_its_precision_and_its_error_is_against_fp64(phase, precision, tol):
    spec = StepSpec(M, precision, phase=phase)
    case, out = kernels.build_case(spec, CPU)
    assert out.shape == (1, 16 if phase == "prefill" else 1, 256)
    assert 0 <= case.rel_error(out) < tol and case.logical_flops == spec.logical_flops > 0
    assert case.physical_flops <= case.logical_flops + sum(c.count for c in spec.parts()) * 10**6
    assert spec.config_id == f"step/mini/{phase}/1x{16 if phase == 'prefill' else 1}x{0 if phase == 'prefill' else 16}/L2/{precision}/dense"


def test_a_sparse_step_prunes_its_layers_weights_and_counts_the_work_kept():
    spec = StepSpec(M, "fp32", SparsitySpec.parse("unstructured:0.25"))
    case, out = kernels.build_case(spec, CPU)
    assert 0.2 < case.density < 0.3 and case.physical_flops < spec.logical_flops
    assert case.rel_error(out) < 1e-5               # against fp64 of the same pruned weights


def test_a_scheme_step_quantizes_the_linear_layers():
    pytest.importorskip("torchao")
    spec = StepSpec(M, "w8a16")
    try:
        case, out = kernels.build_case(spec, CPU)
    except kernels.Unsupported as e:
        pytest.skip(str(e))
    assert out.dtype == torch.bfloat16 and case.rel_error(out) < 5e-2
    assert case.weight_bytes < StepSpec(M, "bf16").element_count() * 2     # int8 weights: below bf16's bytes


def test_plain_int8_and_fp8_steps_are_unsupported_with_the_schemes_named():
    for precision in ("int8", "fp8_e4m3"):
        with pytest.raises(kernels.Unsupported, match="quantization schemes"):
            kernels.build_case(StepSpec(M, precision), CPU)
    with pytest.raises(ValueError, match="2:4"):
        StepSpec(M, "fp32", SparsitySpec.parse("2:4"))


def test_the_hollow_step_has_no_flops_and_a_reference_of_its_own_kind():
    spec = StepSpec(M, "bf16", phase="decode", hollow=True)
    case, out = kernels.build_case(spec, CPU)
    assert case.logical_flops == case.physical_flops == 0 and spec.config_id.endswith("/hollow")
    assert kernels.reference_of(spec) == StepSpec(M, "fp32", phase="decode", hollow=True)
    live = StepSpec(M, "bf16", phase="decode", hollow=True, live_ops=True)
    assert live.config_id.endswith("/hollow+ops") and kernels.reference_of(live).live_ops
    case, _ = kernels.build_case(live, CPU)
    assert case.logical_flops == 0
    with pytest.raises(ValueError, match="hollow"):
        StepSpec(M, "bf16", live_ops=True)
    mm = StepSpec(M, "bf16", phase="decode", hollow=True, live_matmuls=True)
    assert mm.config_id.endswith("/hollow+mm") and kernels.reference_of(mm).live_matmuls
    case, _ = kernels.build_case(mm, CPU)
    assert case.logical_flops == 0 and case.weight_bytes > 0           # real weights: the matmuls run
    with pytest.raises(ValueError, match="not both"):
        StepSpec(M, "bf16", hollow=True, live_ops=True, live_matmuls=True)
    # the baselines: nothing live, one kind's stubs writing their outputs; beside the step like every twin
    base = StepSpec(M, "bf16", phase="decode", hollow=True, writes="mm")
    assert base.config_id.endswith("/hollow+mm-writes") and kernels.reference_of(base).writes == "mm"
    assert base.beside() == StepSpec(M, "bf16", phase="decode")
    case, _ = kernels.build_case(base, CPU)
    assert case.logical_flops == 0 and case.weight_bytes == 0
    for bad in (dict(writes="mm"), dict(hollow=True, live_ops=True, writes="mm"), dict(hollow=True, writes="all")):
        with pytest.raises(ValueError, match="writing stubs"):
            StepSpec(M, "bf16", **bad)


def test_a_transformers_config_json_is_a_step_with_its_flops_counted(tmp_path):
    pytest.importorskip("transformers")
    from hwprof.kernels import hf
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "hidden_size": 64,
                                                      "num_hidden_layers": 2, "num_attention_heads": 4,
                                                      "intermediate_size": 128, "vocab_size": 256}))
    config = hf.read_config(tmp_path / "config.json")
    assert hf.shape_of(config, "neox", 16) is None                 # not a family hwprof's decoder computes
    shape = hf.generic_shape(config, "neox", 16)
    spec = StepSpec(shape, "fp32", backend="transformers", config=str(tmp_path / "config.json"), decomposed=False)
    case, out = kernels.build_case(spec, CPU)
    assert spec.logical_flops == 0 and case.logical_flops > 0 and not spec.parts()
    assert case.rel_error(out) < 1e-5
    (tmp_path / "llama.json").write_text(hf.hf_config(M).to_json_string())
    assert hf.shape_of(hf.read_config(tmp_path / "llama.json"), "mini", 16) == M
    with pytest.raises(ValueError, match="no model_type"):
        (tmp_path / "bad.json").write_text("{}")
        hf.read_config(tmp_path / "bad.json")


def test_a_shallow_step_reads_cold_replicas_of_its_layers_in_the_steps_dtype():
    spec = StepSpec(ModelShape("deep", 64, 8, 4, 2, 128, 256, 16), "bf16", depth=2)
    case, out = kernels.build_case(spec, CPU)
    assert spec.layers == 2 and spec.config_id.split("/")[4] == "L2" and out.dtype == torch.bfloat16
    first = case.run()
    assert not torch.equal(first, case.run())          # the next call used another replica of the two layers
    assert case.rel_error(out) < 3e-2


def test_a_decode_steps_bytes_are_its_weights_the_cache_it_reads_the_extension_it_writes_and_its_logits():
    spec = StepSpec(M, "fp32", phase="decode")
    case, _ = kernels.build_case(spec, CPU)
    per_token = 2 * M.n_layers * M.batch * M.n_kv_heads * M.head_dim * 4
    logits = M.batch * M.vocab * 4
    assert case.bytes_moved == case.weight_bytes + per_token * (2 * M.kv_context + 1) + logits
    prefill, _ = kernels.build_case(StepSpec(M, "fp32"), CPU)
    assert prefill.bytes_moved == prefill.weight_bytes + M.batch * M.seq_len * M.vocab * 4


def test_a_hollow_twins_memory_estimate_counts_only_the_weights_it_holds():
    from dataclasses import replace

    from hwprof.kernels.build import estimate_bytes
    from hwprof.kernels.model import PRESETS
    step = StepSpec(PRESETS["llama-small"], "bf16", phase="decode")
    hollow = replace(step, hollow=True)
    ops, mm = replace(hollow, live_ops=True), replace(hollow, live_matmuls=True)
    sizes = [estimate_bytes(s) for s in (hollow, ops, mm, step)]
    assert sizes == sorted(sizes) and sizes[0] < 2**27          # every kernel a stub: no weights at all
    case, _ = kernels.build_case(replace(StepSpec(M, "bf16", phase="decode"), hollow=True, live_matmuls=True), CPU)
    assert case.weight_bytes < estimate_bytes(replace(StepSpec(M, "bf16", phase="decode"), hollow=True,
                                                      live_matmuls=True))
