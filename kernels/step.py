"""A model's whole step as one configuration: prefill or decode of a decoder in the step's precision,
quantization scheme or weight sparsity, built with seeded random weights (kernels.decoder, or transformers for
a config.json), measured like any kernel against its reference step (the same model, dense fp32).

Logical FLOPs are the step's matmuls and attention with hwprof's conventions (kernels.flops: every (q, k)
pair of the dense reference; the ops between them count none), physical FLOPs what its kernels execute
(causal pairs where the backend skips masked blocks, the kept weights of a sparse step, the ops' arithmetic).
`rel_error` is the logits' against an fp64 computation of the same step (fp32 where the fp64 model would
not fit in REFERENCE_FP64_BYTES).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from hwprof.kernels import flops, ops
from hwprof.kernels.calls import WRITERS
from hwprof.kernels.case import Case, rel_error
from hwprof.kernels.errors import Unsupported
from hwprof.kernels.model import PHASES, ModelShape, attention_precision, components
from hwprof.kernels.precision import PRECISIONS, fp32_matmul_mode
from hwprof.kernels.schemes import SCHEME_FORMS, is_scheme, parse_scheme
from hwprof.kernels.spec import SparsitySpec

REFERENCE_FP64_BYTES = 4 * 2**30
BACKENDS = ("hwprof", "transformers")


@dataclass(frozen=True)
class StepSpec:
    model: ModelShape
    precision: str
    sparsity: SparsitySpec = SparsitySpec("dense")
    phase: str = "prefill"
    depth: int = 0                   # layers built (0: all of them)
    backend: str = "hwprof"          # hwprof (kernels.decoder) | transformers (a config.json's model)
    config: str = ""                 # transformers: the config.json
    decomposed: bool = True          # False: a transformers architecture kernels.model does not decompose
    hollow: bool = False             # every kernel a stub: the step's own work between kernels (its glue)
    live_ops: bool = False           # hollow, but the ops between the matmuls run: the ops as the step runs them
    live_matmuls: bool = False       # hollow, but the matmuls and attention run: them as the step runs them
    writes: str = ""                 # hollow, nothing live, this kind's stubs writing their outputs (mm | ops):
                                     # the baseline of the hollow step whose other kind runs (kernels.calls)
    kernel: str = "step"
    pass_: str = "fwd"

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r} (use prefill or decode)")
        if self.precision not in PRECISIONS and parse_scheme(self.precision) is None:
            raise ValueError(f"unknown precision {self.precision!r} for a model step (precisions: "
                             f"{', '.join(PRECISIONS)}; quantization schemes: {', '.join(SCHEME_FORMS)})")
        if self.sparsity.pattern == "2:4":
            raise ValueError("2:4 sparsity is measured on matmul kernels, not on a model's steps")
        if not 0 <= self.depth <= self.model.n_layers:
            raise ValueError(f"depth {self.depth} outside 0..{self.model.n_layers}")
        if self.backend not in BACKENDS or (self.backend == "hwprof" and self.config):
            raise ValueError("only a transformers step is built from a config.json")
        if not self.decomposed and self.backend != "transformers":
            raise ValueError("a step whose kernels are not known is a transformers architecture's")
        if self.hollow and (self.backend != "hwprof" or self.sparsity.pattern != "dense"):
            raise ValueError("a hollow step is hwprof's decoder, dense")
        if (self.live_ops or self.live_matmuls) and not self.hollow:
            raise ValueError("live ops or matmuls are a hollow step's (the rest of its kernels stubs)")
        if self.live_ops and self.live_matmuls:
            raise ValueError("a hollow step runs its ops or its matmuls live, not both (that is the step)")
        if self.writes and (self.writes not in WRITERS or not self.hollow or self.live_ops or self.live_matmuls):
            raise ValueError(f"writing stubs ({', '.join(WRITERS)}) are the baseline of a hollow step with nothing live")

    @property
    def layers(self) -> int:
        return self.depth or self.model.n_layers

    @property
    def shape(self) -> tuple[int, int, int]:
        """(batch, tokens in, KV context): the `shape` column."""
        m = self.model
        return (m.batch, m.seq_len, 0) if self.phase == "prefill" else (m.batch, 1, m.kv_context)

    @property
    def tokens(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def config_id(self) -> str:
        b, t, c = self.shape
        tail = "" if self.backend == "hwprof" else "/transformers"
        if self.hollow:
            tail += "/hollow" + ("+ops" if self.live_ops else "+mm" if self.live_matmuls else "") + \
                (f"+{self.writes}-writes" if self.writes else "")
        return f"step/{self.model.name}/{self.phase}/{b}x{t}x{c}/L{self.layers}/{self.precision}/{self.sparsity}{tail}"

    def parts(self):
        return components(self.model, self.phase, self.layers) if self.decomposed else []

    @property
    def logical_flops(self) -> int:
        """0 where the kernels are not known: the built case counts them (FlopCounterMode), `build_step`."""
        if not self.decomposed or self.hollow:
            return 0
        total = 0
        for c in self.parts():
            if c.kind in ("linear", "conv1d"):
                total += c.count * flops.matmul_flops(*c.shape)
            elif c.kind == "attention":
                b, h, sq, sk, d = c.shape[:5]
                total += c.count * flops.attention_fwd_flops(b, h, sq, sk, d)
        return total

    @property
    def physical_flops(self) -> int:
        """Work the step's kernels execute: causal attention on a block-skipping backend (what SDPA picks for
        a prefill on CPU and GPU), the ops' arithmetic; a sparse step's linear layers at the kept share (the
        logical count where the kernels are not known)."""
        if not self.decomposed or self.hollow:
            return 0
        total = 0.0
        for c in self.parts():
            if c.kind in ("linear", "conv1d"):
                keep = self.sparsity.density if c.weight and c.role != "lm_head" else 1.0
                total += c.count * flops.matmul_flops(*c.shape) * keep
            elif c.kind == "attention":
                b, h, sq, sk, d = c.shape[:5]
                pairs = flops.executed_pairs(c.mask, sq, sk, "flash")
                total += c.count * flops.attention_fwd_flops(b, h, sq, sk, d, pairs=pairs)
            else:
                total += c.count * ops.OpSpec(c.op, c.shape, "fp32").physical_flops
        return int(total)

    @property
    def sparsity_column(self) -> str:
        return self.sparsity.column

    @property
    def density(self) -> float:
        return self.sparsity.density

    def reference(self) -> "StepSpec":
        return dataclasses.replace(self, precision="fp32", sparsity=SparsitySpec("dense"))

    def beside(self) -> "StepSpec":
        """The step a hollow twin explains, whose rounds its own must alternate with (itself for a step)."""
        return dataclasses.replace(self, hollow=False, live_ops=False, live_matmuls=False, writes="")

    def element_count(self) -> int:
        from hwprof.kernels.decoder import weight_bytes
        return weight_bytes(self.model, self.layers, 1)


def activation_dtype(precision: str) -> torch.dtype:
    """The dtype a step's activations (and its unquantized layers) run in: the precision's own, fp32 for tf32
    (a matmul mode), bf16 for a quantization scheme (its layers take bf16 activations)."""
    return PRECISIONS[attention_precision(precision)].dtype


def check_support(spec: StepSpec, device: torch.device) -> None:
    if spec.precision in ("int8", "fp8_e4m3"):
        raise Unsupported(f"a model step in plain {spec.precision} has no linear layers to run; its deployed forms "
                          "are quantization schemes (w8a8, w8a16 for int8; fp8-row, fp8w for fp8)")
    if spec.precision == "tf32" and device.type != "cuda":
        raise Unsupported("tf32 is a tensor-core mode of NVIDIA GPUs; CPU matmul has no TF32 path")
    if is_scheme(spec.precision) and spec.sparsity.pattern != "dense":
        raise Unsupported(f"{spec.precision} is measured dense: pruning and quantization schemes are not combined")


def build_step(spec: StepSpec, device: torch.device, seed: int) -> Case:
    check_support(spec, device)
    from hwprof.kernels import decoder
    m, dtype = spec.model, activation_dtype(spec.precision)
    if spec.hollow:
        return _hollow(spec, dtype, seed, device)
    model = _model(spec, dtype, seed, device)
    density = 1.0
    if spec.sparsity.pattern != "dense":
        density = decoder.prune_weights(model, spec.sparsity)
    if is_scheme(spec.precision):
        _quantize(model, spec.precision)
    run = _runner(spec, model, dtype, seed, device)

    def error(out) -> float:
        ref_dtype = torch.float64 if decoder.weight_bytes(m, spec.layers, 8) <= REFERENCE_FP64_BYTES else torch.float32
        ref_model = _model(spec, ref_dtype, seed, device)
        if spec.sparsity.pattern != "dense":
            decoder.prune_weights(ref_model, spec.sparsity)
        with torch.no_grad():
            ref = _runner(spec, ref_model, ref_dtype, seed, device)()
        return rel_error(out, ref)
    weights = _weights(model)
    logits = spec.tokens * m.vocab * torch.empty((), dtype=dtype).element_size()
    # decode reads the cache and writes its extension, a result of the step as much as its logits are
    cache = _cache_bytes(spec, dtype, spec.shape[2]) + (_cache_bytes(spec, dtype, spec.shape[2] + 1) if spec.shape[2] else 0)

    def context():
        import contextlib
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())           # as transformers' generate runs (and CSR linear needs it)
        stack.enter_context(fp32_matmul_mode(device, tf32=spec.precision == "tf32"))
        return stack
    logical = physical = spec.logical_flops
    if spec.decomposed:
        physical = spec.physical_flops
    else:                               # FlopCounterMode's formulas are hwprof's conventions for matmul and SDPA
        from torch.nn.attention import SDPBackend, sdpa_kernel
        from torch.utils.flop_counter import FlopCounterMode
        # under the math backend: FlopCounterMode has no formula for CPU flash attention (it would count 0)
        with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
            _runner(spec, _model(spec, torch.float32, seed, device), torch.float32, seed, device)()
        logical = physical = int(counter.get_total_flops())
    return Case(spec=spec, run=run, logical_flops=logical, physical_flops=physical,
                density=density, backend=spec.backend, bytes_moved=weights + cache + logits, error_fn=error,
                context=context, weight_bytes=weights)


def _hollow(spec: StepSpec, dtype: torch.dtype, seed: int, device) -> Case:
    """The step with every kernel a stub (kernels.calls.Hollow): what it costs between its kernels; with
    live ops, only its matmuls and attention are (kernels.calls.HollowMatmuls): its ops and glue as the step
    runs them; with live matmuls, only its ops are (HollowOps): its matmuls, attention and glue as the step
    runs them, on real weights (quantized for a scheme). Either's stubs write their outputs; `writes` makes the
    step whose stubs write as theirs do, with nothing live: what either is read against."""
    from hwprof.kernels import decoder
    model = decoder.Decoder(spec.model, seed, device, spec.layers, hollow=dtype, live_ops=spec.live_ops,
                            live_matmuls=spec.live_matmuls, writes=spec.writes).to(dtype)
    weights = 0
    if spec.live_matmuls:
        if is_scheme(spec.precision):
            _quantize(model, spec.precision)
        weights = _weights(model)
    run = _runner(spec, model, dtype, seed, device)
    return Case(spec=spec, run=run, logical_flops=0, physical_flops=0, density=1.0, backend="hwprof",
                bytes_moved=0, error_fn=lambda out: float("nan"), context=torch.no_grad, weight_bytes=weights)


def _model(spec: StepSpec, dtype: torch.dtype, seed: int, device):
    from hwprof.kernels import decoder, hf
    if spec.backend == "transformers":
        config = hf.read_config(spec.config) if spec.config else hf.hf_config(spec.model)
        return hf.build_model(config, dtype, seed, device, spec.depth or None)
    replicas = 1
    if spec.depth:              # a shallow step reads its layers cold, as the whole model's does
        from hwprof.kernels.caches import cold_bytes
        from hwprof.kernels.linear import copies_for
        layer_bytes = decoder.weight_bytes(spec.model, spec.layers, 4) - decoder.weight_bytes(spec.model, 0, 4)
        replicas = copies_for(layer_bytes, cold_bytes(device))
    return decoder.Decoder(spec.model, seed, device, spec.layers, replicas=replicas).to(dtype)


def _runner(spec: StepSpec, model, dtype: torch.dtype, seed: int, device):
    from hwprof.kernels import decoder, hf
    m = spec.model
    if spec.backend == "transformers":
        return hf.hf_step(model, spec.phase, m.batch, m.seq_len, m.kv_context, seed, device)
    ids = decoder.step_inputs(m, spec.phase, seed, device)
    if spec.phase == "prefill":
        return lambda: model(ids)
    cache = decoder.random_cache(m, m.kv_context, spec.layers, dtype, seed, device)
    return lambda: model(ids, cache)


def _quantize(model, precision: str) -> None:
    from hwprof.kernels.decoder import quantizable
    from hwprof.kernels.quantized import _REFUSALS, _quiet_loggers, torchao_version
    from hwprof.kernels.schemes import INSTALL
    if torchao_version() is None:
        raise Unsupported(f"quantization schemes need torchao, which is not installed: {INSTALL}")
    from torchao.quantization import quantize_
    try:
        with _quiet_loggers("torchao", "torch.utils._pytree"):
            quantize_(model, parse_scheme(precision).torchao_config(), filter_fn=quantizable)
    except _REFUSALS as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Unsupported(f"torchao {torchao_version()} has no {precision} kernel here: {why}") from None


def _cache_bytes(spec: StepSpec, dtype: torch.dtype, tokens: int) -> int:
    """Bytes of a KV cache of `tokens` tokens of every layer the step builds (keys and values)."""
    m = spec.model
    return 2 * spec.layers * m.batch * m.n_kv_heads * tokens * m.head_dim * torch.empty((), dtype=dtype).element_size()


def _weights(model) -> int:
    """Bytes the model's parameters and buffers hold as stored (sparse or quantized)."""
    return sum(_stored(p) for p in list(model.parameters()) + list(model.buffers()))


def _stored(t: torch.Tensor) -> int:
    from hwprof.kernels.case import stored_bytes
    return stored_bytes(t)
