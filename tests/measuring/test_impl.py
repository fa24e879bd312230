"""Which kernel ran: oneDNN and MKL call logs and the profiler's ops, parsed (real lines from the CPUs this
project met) and captured for real on this machine."""
import torch

from hwprof.measuring.trace import capture_impl
from hwprof.measuring.impl import (Impl, Kernel, _Event, dispatched_ops, is_reference_name,
                                   parse_mkl, parse_onednn, short_kernel_name, summarize_trace)

# Intel Xeon (family 6, AMX), torch 2.13.0+cpu, oneDNN 3.x with the v1 header: fp8 _scaled_mm, bf16, fp16
XEON_FP8 = ("onednn_verbose,v1,primitive,exec,cpu,matmul,ref:any,undef,src:f8_e4m3:a:blocked:ab::f0 "
            "wei:f8_e4m3:a:blocked:ab::f0 dst:bf16:a:blocked:ab::f0,attr-scratchpad:user,,64x64:64x64,8.07812")
XEON_BF16 = ("onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512_amx,undef,src:bf16::blocked:ab::f0 "
             "wei:bf16::blocked:ab::f0 dst:bf16::blocked:ab::f0,attr-scratchpad:user,,512x1024:1024x1024,0.9")
XEON_FP16 = ("onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512,undef,src:f16::blocked:ab::f0 "
             "wei:f16::blocked:ab::f0 dst:f16::blocked:ab::f0,attr-scratchpad:user,,256x256:256x256,0.4")
# AMD EPYC Zen 5, the same torch: bf16, int8 (_int_mm: oneDNN's gemm API has no implementation name), headers
ZEN5 = """onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71049cd69a3df32adcccb623b12cd7baa22)
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support
onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,memory_descriptors
onednn_verbose,v1,graph,info,template:operation,engine,partition_id,partition_kind,op_names,data_formats
onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_bf16,undef,src:bf16::blocked:ab::f0 wei:bf16::blocked:ab::f0 dst:bf16::blocked:ab::f0,attr-scratchpad:user,,256x256:256x256,6.29883
onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_s8::blocked:ab:f0 wei_s8::blocked:ba:f0 dst_s32::blocked:ab:f0,,,256x256:256x256,9.125
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:ab::f0 dst:bf16::blocked:ab::f0,,,256x256,0.1
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture Intel(R) Architecture processors, Lnx 2.60GHz lp64 gnu_thread
MKL_VERBOSE SGEMM(N,N,256,256,256,0x7fff54405290,0x561e575f32c0,256,0x561e575b3240,256,0x7fff544052b0,0x561e57633340,256) 4.61ms CNR:OFF Dyn:1 FastMM:1 TID:0  NThr:2
MKL_VERBOSE SGEMM_BATCH(N,N,...) 53.70us CNR:OFF Dyn:1 FastMM:1 TID:0  NThr:1
USDT:2026-12-02 05:00:52 3179:3179 SyncActivityProfilerHandler.cpp:52] profiler_start
"""
# oneDNN 2.x (torch 2.0-2.3) wrote neither the v1 header nor "primitive"
OLD = "dnnl_verbose,exec,cpu,inner_product,gemm:jit,forward_inference,src_f32::blocked:ab:f0,,,mb16ic64oc64,0.02"


def test_onednn_lines_of_every_format_name_the_kernel_and_its_reference_implementations():
    (fp8,), _ = parse_onednn([XEON_FP8])
    assert fp8 == Kernel("onednn", "ref:any", reference=True) and str(fp8) == "onednn:ref:any"
    (bf16,), _ = parse_onednn([XEON_BF16])
    assert str(bf16) == "onednn:brg_matmul:avx10_1_512_amx" and not bf16.reference
    assert str(parse_onednn([XEON_FP16])[0][0]) == "onednn:brg_matmul:avx10_1_512"
    kernels, info = parse_onednn(ZEN5.splitlines())
    assert [str(k) for k in kernels] == ["onednn:brg_matmul:avx512_core_bf16", "onednn:gemm_api"]   # no reorder
    assert info[0].startswith("oneDNN v3.12.0") and "bfloat16" in info[1]
    assert [str(k) for k in parse_onednn([OLD])[0]] == ["onednn:inner_product:gemm:jit"]


def test_reference_names_are_the_ones_whose_parts_say_ref():
    assert is_reference_name("ref:any") and is_reference_name("ref_int8:any") and is_reference_name("gemm:ref")
    assert not is_reference_name("brg_matmul:avx10_1_512_amx") and not is_reference_name("gemm:jit")
    assert not is_reference_name("brgemm:avx512_core_amx") and not is_reference_name("")


def test_mkl_lines_name_the_blas_function_and_keep_the_banner():
    kernels, info = parse_mkl(ZEN5.splitlines())
    assert [str(k) for k in kernels] == ["mkl:SGEMM", "mkl:SGEMM_BATCH"] and "oneMKL 2024.0" in info[0]


def test_dispatched_ops_look_through_composites_and_leave_out_views():
    events = [_Event("aten::matmul", None), _Event("aten::mm", "aten::matmul"), _Event("aten::resolve_conj", "aten::mm"),
              _Event("aten::scaled_dot_product_attention", None),
              _Event("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::scaled_dot_product_attention"),
              _Event("aten::empty_like", "aten::_scaled_dot_product_flash_attention_for_cpu"), _Event("aten::t", None)]
    assert dispatched_ops(events) == ["aten::mm", "aten::_scaled_dot_product_flash_attention_for_cpu"]


def test_the_label_puts_library_kernels_first_and_only_computing_ops():
    impl = summarize_trace(ZEN5, [_Event("aten::mm", None), _Event("aten::flatten", None)], [])
    assert impl.label() == "onednn:brg_matmul:avx512_core_bf16; onednn:gemm_api; mkl:SGEMM; mkl:SGEMM_BATCH; +1 more"
    assert Impl((), ("aten::flatten",)).label() == "aten:flatten"          # nothing known computes: the first op
    assert Impl().label() == ""


def test_cuda_kernel_names_are_shortened_to_what_identifies_the_kernel():
    assert short_kernel_name("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_256x128_32x3_tn_align8>"
                             "(cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_256x128_32x3_tn_align8::Params)") == \
        "cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_256x128_32x3_tn_align8>"
    assert short_kernel_name("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1_execute_"
                             "segment_k_off_kernel__5x_cublas").startswith("sm90_xmma_gemm_bf16bf16")
    assert short_kernel_name("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>, true>"
                             "(pytorch_flash::Flash_fwd_params)") == "pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits>"
    impl = summarize_trace("", [], ["void pytorch_flash::flash_fwd_kernel<X, true>(P)"])
    assert impl.label() == "cuda:pytorch_flash::flash_fwd_kernel<X>"


def test_a_real_capture_on_this_cpu_names_a_library_kernel_and_leaves_stdout_alone(capfd):
    a = torch.randn(128, 128)
    print("before", flush=True)
    with capture_impl(torch.device("cpu")) as trace:
        a @ a
        print("inside")                       # the block's own output goes to the capture, not the terminal
    print("after", flush=True)
    out = capfd.readouterr().out
    assert "before" in out and "after" in out and "MKL_VERBOSE" not in out and "onednn_verbose" not in out
    assert trace.impl.logged and "aten::mm" in trace.impl.ops
    if torch.backends.mkl.is_available():
        assert "mkl:SGEMM" in [str(k) for k in trace.impl.kernels]
    with capture_impl(torch.device("cpu")) as trace:
        a.bfloat16() @ a.bfloat16()
    assert trace.impl.kernels or trace.impl.ops                  # oneDNN where it has a bf16 kernel, else aten
