"""Which library kernel really ran a callable: what the call logs and the profiler say, parsed (pure).

A row's number is only the hardware's if the hardware's fast path computed it. The same torch call can land
on very different code: on a Xeon with AMX, bf16 matmul runs oneDNN's `brg_matmul:avx10_1_512_amx` while fp8
`_scaled_mm` runs oneDNN's `ref:any`, a correctness fallback ~6,000x slower; on an EPYC without AVX512-FP16,
fp16 matmul calls no library at all (aten's own loop). One call is run (measuring.trace) with
- oneDNN's verbose log (`torch.backends.mkldnn.verbose`), one `primitive,exec` line per primitive executed;
- MKL's verbose log (`torch.backends.mkl.verbose`), one line per BLAS call;
- torch.profiler, for the aten ops torch dispatched and, on CUDA, the names of the kernels launched.
Both logs are printed by C code to the process's stdout, so fds 1 and 2 are redirected to files for the call
(the profiler's own messages go to fd 2).

The parsers are pure functions over those lines (tests hold real lines from the CPUs this project met);
measuring.trace makes the call with the logs on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

# oneDNN primitive kinds that compute; reorders and the like only move data between layouts.
COMPUTE_PRIMITIVES = ("matmul", "inner_product", "convolution", "deconvolution", "gemm_api", "rnn", "softmax",
                      "layer_normalization", "batch_normalization", "eltwise", "binary", "pooling", "brgemm")
# aten ops that only view, allocate or copy: never what "ran" a kernel.
_UTILITY_OPS = re.compile(r"^aten::(empty|empty_like|empty_strided|zeros|ones|resolve_conj|resolve_neg|alias|as_strided|"
                          r"view|_unsafe_view|reshape|t|transpose|expand|permute|contiguous|clone|detach|lift_fresh|"
                          r"_nnz|crow_indices|col_indices|values|zero_|fill_|select|slice|unsqueeze|squeeze|"
                          r"result_type|item|_local_scalar_dense|is_nonzero|scalar_tensor|split|chunk|narrow)$")
# Dispatched ops named in the `impl` column: the ones a kernel of this project is made of.
_KERNEL_OPS = re.compile(r"^(aten::(mm|bmm|addmm|addbmm|baddbmm|_int_mm|_scaled_mm|_sparse.*|.*attention.*|"
                         r"_weight_int\d+pack.*|_convert_weight.*|_cslt.*|embedding|layer_norm|rms_norm|"
                         r"native_layer_norm|_fused_rms_norm|softmax|_softmax|_safe_softmax|silu|gelu|add|mul)|"
                         r"torchao::.*|mkldnn::.*)$")
# Composite ops whose work is done by the op they dispatch to (the child says which kernel ran).
_COMPOSITE = ("aten::matmul", "aten::linear", "aten::scaled_dot_product_attention", "aten::einsum", "aten::to",
              "aten::_to_copy")


@dataclass(frozen=True)
class Kernel:
    """One library kernel that ran: `library` (onednn, mkl, cuda) and its name there."""
    library: str
    name: str
    reference: bool = False        # the library's reference or fallback code, not its fast path

    def __str__(self) -> str:
        return f"{self.library}:{self.name}"


@dataclass(frozen=True)
class Impl:
    """What ran one call: library kernels (in first-seen order), the aten ops torch dispatched, and the
    libraries' own banners (versions, ISA) when they printed one."""
    kernels: tuple[Kernel, ...] = ()
    ops: tuple[str, ...] = ()
    info: tuple[str, ...] = ()
    logged: bool = True            # whether the call logs could be read (False: only the ops are known)

    @property
    def reference(self) -> tuple[Kernel, ...]:
        return tuple(k for k in self.kernels if k.reference)

    def label(self, limit: int = 4) -> str:
        """The `impl` column: library kernels first, then the dispatched ops that compute (all of them in
        run.json), ';'-separated; where no op is of a known computing kind, the first one."""
        ops = [op for op in self.ops if _KERNEL_OPS.match(op)] or list(self.ops[:1])
        names = list(dict.fromkeys([str(k) for k in self.kernels] + [op.replace("::", ":") for op in ops]))
        return "; ".join(names[:limit] + ([f"+{len(names) - limit} more"] if len(names) > limit else []))

    def to_json(self) -> dict:
        return {"kernels": [str(k) for k in self.kernels], "reference": [str(k) for k in self.reference],
                "ops": list(self.ops), "info": list(self.info), "logged": self.logged}

    @classmethod
    def from_json(cls, d: dict) -> "Impl":
        ref = set(d.get("reference", []))
        kernels = tuple(Kernel(*str(k).split(":", 1), reference=k in ref) for k in d.get("kernels", []) if ":" in str(k))
        return cls(kernels, tuple(d.get("ops", [])), tuple(d.get("info", [])), bool(d.get("logged", True)))


def is_reference_name(impl: str) -> bool:
    """oneDNN names its reference implementations `ref:any`, `ref_int8:any`, `gemm:ref`, ...: a part of the
    name, between colons, that is `ref` or starts with `ref_`."""
    return any(part == "ref" or part.startswith("ref_") for part in impl.split(":"))


def parse_onednn(lines: list[str]) -> tuple[list[Kernel], list[str]]:
    """oneDNN verbose lines -> (compute kernels executed, info lines). Both formats oneDNN has written:
    `onednn_verbose,v1,primitive,exec,cpu,matmul,IMPL,...` (3.x with the v1 header) and
    `onednn_verbose,exec,cpu,matmul,IMPL,...` / `dnnl_verbose,exec,...` (2.x and early 3.x)."""
    kernels, info = [], []
    for raw in lines:
        line = raw.strip()
        if not line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            continue
        f = line.split(",")
        if "info" in f[:3]:
            info.append(",".join(f[f.index("info") + 1:]))
            continue
        if "exec" not in f[:4]:
            continue
        i = f.index("exec")
        if len(f) < i + 4:
            continue
        engine, kind, impl = f[i + 1], f[i + 2], f[i + 3]
        if kind not in COMPUTE_PRIMITIVES:
            continue
        name = (impl if kind == "matmul" else f"{kind}:{impl}") if impl else kind   # gemm_api has no impl name
        kernels.append(Kernel("onednn", name if engine == "cpu" else f"{engine}:{name}", is_reference_name(impl)))
    return kernels, info


_MKL = re.compile(r"^MKL_VERBOSE\s+([A-Z][A-Z0-9_]*)\(")


def parse_mkl(lines: list[str]) -> tuple[list[Kernel], list[str]]:
    """MKL verbose lines -> (BLAS functions called, the version banner)."""
    kernels, info = [], []
    for raw in lines:
        line = raw.strip()
        if not line.startswith("MKL_VERBOSE"):
            continue
        m = _MKL.match(line)
        if m:
            kernels.append(Kernel("mkl", m.group(1)))
        else:
            info.append(line[len("MKL_VERBOSE"):].strip())
    return kernels, info


def short_kernel_name(name: str) -> str:
    """A CUDA kernel's name without return type, namespaces' template arguments and parameters:
    `void cutlass::Kernel2<cutlass_80_tensorop_s16816gemm_...>(Params)` -> `cutlass::Kernel2<cutlass_80_...>`
    keeps the first template argument, which is where CUTLASS and cuBLAS put the tile's name."""
    n = re.sub(r"^void\s+", "", name.strip())
    n = re.sub(r"\(.*\)$", "", n)
    m = re.match(r"^([^<]*)<([^,<>]*)", n)
    if m:
        n = f"{m.group(1)}<{m.group(2)}>" if m.group(2) else m.group(1)
    return n[:120]


@dataclass
class _Event:
    name: str
    parent: str | None


def dispatched_ops(events: list[_Event]) -> list[str]:
    """The aten (and library) ops that did the work: each top-level op, or for a composite op (matmul,
    sdpa, ...) the ops it dispatched to; views, allocations and copies left out."""
    children: dict[str, list[str]] = {}
    for e in events:
        if e.parent is not None:
            children.setdefault(e.parent, []).append(e.name)
    out: list[str] = []
    for e in events:
        if e.parent is not None:
            continue
        todo = [e.name]
        while todo:
            name = todo.pop(0)
            if name in _COMPOSITE and children.get(name):
                todo = [c for c in children[name] if c != name] + todo
            elif not _UTILITY_OPS.match(name):
                out.append(name)
    return list(dict.fromkeys(out))


def summarize_trace(log: str, events: list[_Event], cuda_kernels: list[str]) -> Impl:
    """Pure: what the call logs, the profiler's CPU events and its CUDA kernel names say ran."""
    lines = log.splitlines()
    dnnl, dnnl_info = parse_onednn(lines)
    mkl, mkl_info = parse_mkl(lines)
    cuda = [Kernel("cuda", short_kernel_name(k)) for k in cuda_kernels]
    kernels = tuple(dict.fromkeys(dnnl + mkl + cuda))
    return Impl(kernels, tuple(dispatched_ops(events)), tuple(dict.fromkeys(dnnl_info + mkl_info)))


def blas_library() -> str:
    """The BLAS torch was built against (`BLAS_INFO` in torch.__config__), e.g. mkl or open; "" if unsaid."""
    m = re.search(r"BLAS_INFO=([A-Za-z0-9_]+)", torch.__config__.show())
    return m.group(1) if m else ""
