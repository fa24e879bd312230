"""[[model]] suite groups: a transformer's steps as configurations, and the plans that combine their rows back
into the model (analysis.models).

Per (precision, sparsity, phase) a group gives:
- the whole step, measured (kernels.step): at full depth, or, for a model too large for that, `layers` deep
  (its layers read cold), scaled to n_layers by its kernels (models.csv says which);
- the step's kernels (kernels.model.components) as ordinary configurations, whose count-weighted sum is the
  prediction the measured step is checked against.
A fwd+bwd (training) pass is not measured whole: its plan is the kernel sum of kernels.model.matmul_parts.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, replace

from hwprof.kernels.model import PHASES, ModelShape, attention_precision, components, from_group, matmul_parts
from hwprof.kernels.ops import OpSpec
from hwprof.kernels.schemes import is_scheme
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec, Spec, reference_of
from hwprof.kernels.step import StepSpec

MODEL_KEYS = {"name", "preset", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "vocab", "seq_len", "batch",
              "gated_mlp", "family", "context", "phases", "layers", "implementation", "config", "passes",
              "precisions", "sparsity", "device"}
FULL_DEPTH_BYTES = 2 * 2**30      # fp32 weights up to this: the whole step at full depth; beyond, a shallower one
SHALLOW_DEPTH = 2
# The part that measures the ops as the step runs them (the hollow step with live ops): not a kernel of the
# sum, but what scales the op kernels' figures to their time in the step's sequence (analysis.models).
OPS_IN_STEP = "ops_in_step"
# Likewise for the matmuls and attention: the hollow step whose ops are stubs (real weights, the step's
# precision or scheme). Planned where the step is measured dense and at full depth, as its figure must be.
MATMULS_IN_STEP = "matmuls_in_step"
# What each is read against: the hollow step whose stubs write their outputs as the in-step one's do, with
# nothing live (kernels.calls), so that those writes are not counted as the live kind's cost.
BASELINE = {OPS_IN_STEP: "ops_in_step_baseline", MATMULS_IN_STEP: "matmuls_in_step_baseline"}
IN_STEP = (OPS_IN_STEP, MATMULS_IN_STEP, *BASELINE.values())
# What each kernel of a step counts as in the breakdown of where a token's time goes (models.csv, report).
GROUPS = {"q_proj": "projections", "k_proj": "projections", "v_proj": "projections", "qkv": "projections",
          "out_proj": "projections", "attention": "attention", "mlp_gate": "mlp", "mlp_up": "mlp", "mlp_down": "mlp",
          "lm_head": "lm_head", "rmsnorm": "norms", "layernorm": "norms", "final_norm": "norms",
          "silu_gate": "activation", "gelu": "activation", "rotary": "rotary", "rotary_tables": "rotary", "residual": "residual",
          "positions_add": "residual", "embedding": "embedding", "position_embedding": "embedding",
          "kv_append": "kv_cache", "merge_heads": "head_merge", "glue": "glue", **{r: r for r in IN_STEP}}


@dataclass(frozen=True)
class Part:
    role: str
    config_id: str
    reference_id: str          # its reference realisation (the model's reference step's kernel)
    count: int                 # runs per step
    group: str = ""            # GROUPS

    @property
    def is_op(self) -> bool:
        """An op between the matmuls (kernels.ops), whose time in the step OPS_IN_STEP measures."""
        return self.config_id.startswith("op/")


@dataclass(frozen=True)
class StepRef:
    depth: int                 # layers of the measured step
    config_id: str
    reference_id: str


@dataclass
class ModelPlan:
    model: ModelShape
    precision: str
    sparsity: str
    pass_: str
    phase: str = "prefill"     # prefill | decode | train (fwd+bwd: the kernel sum only)
    parts: list[Part] = field(default_factory=list)
    steps: list[StepRef] = field(default_factory=list)   # the measured step: full depth, or shallower (scaled)
    backend: str = "hwprof"

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return self.model.name, self.phase, self.precision, self.sparsity, self.pass_

    @property
    def tokens(self) -> int:
        return self.model.batch * (self.model.seq_len if self.phase != "decode" else 1)

    def to_json(self) -> dict:
        return {"model": self.model.to_json(), "precision": self.precision, "sparsity": self.sparsity,
                "pass": self.pass_, "phase": self.phase, "backend": self.backend,
                "parts": [asdict(p) for p in self.parts], "steps": [asdict(s) for s in self.steps]}

    @classmethod
    def from_json(cls, d: dict) -> "ModelPlan":
        return cls(ModelShape(**d["model"]), d["precision"], d["sparsity"], d["pass"], d.get("phase", "prefill"),
                   [Part(**p) for p in d["parts"]], [StepRef(**s) for s in d.get("steps", [])], d.get("backend", "hwprof"))


def step_depths(m: ModelShape, layers) -> list[int]:
    """The depth whose step is measured: [n_layers] (the whole model), or [k] (`layers = k`, or by default
    SHALLOW_DEPTH for a model whose fp32 weights exceed FULL_DEPTH_BYTES), scaled to n_layers by the step's
    kernels (analysis.models)."""
    from hwprof.kernels.decoder import weight_bytes
    if layers in (None, "auto"):
        layers = "all" if weight_bytes(m, m.n_layers, 4) <= FULL_DEPTH_BYTES else SHALLOW_DEPTH
    if layers == "all":
        return [m.n_layers]
    if isinstance(layers, bool) or not isinstance(layers, int) or layers <= 0:
        raise ValueError(f"model {m.name!r}: layers must be \"all\" or a positive integer (got {layers!r})")
    return [min(layers, m.n_layers)]


def _kernel(c, precision: str, sparsity: SparsitySpec, m: ModelShape) -> Spec:
    """The configuration of one component of a step in `precision`: the layer's scheme or precision (GPT-2's
    Conv1D layers stay in bf16 under a scheme, as torchao leaves them), attention and the ops in the
    activations' precision."""
    act = attention_precision(precision)
    if c.kind in ("linear", "conv1d"):
        p = act if (is_scheme(precision) and c.kind == "conv1d") else precision
        keep = sparsity if c.weight and c.role != "lm_head" else SparsitySpec("dense")
        return MatmulSpec(c.shape, p, keep, "fwd", c.kind)
    if c.kind == "attention":
        return AttentionSpec(c.shape, act, c.mask, "auto", "fwd")
    return OpSpec(c.op, c.shape, act)


def expand_model_group(group: dict) -> tuple[list[Spec], list[ModelPlan]]:
    """The configurations of a [[model]] group and one plan per (precision, sparsity, pass, phase);
    ValueError with a one-line reason for a bad shape, name or key. The suite has checked the group's keys
    and list types."""
    model, backend, config, decomposed = _model_of(group)
    precisions = group.get("precisions", ["fp32"])
    sparsities = [SparsitySpec.parse(s) for s in group.get("sparsity", ["dense"])]
    passes = group.get("passes", ["fwd"])
    phases = group.get("phases", list(PHASES))
    for ph in phases:
        if ph not in PHASES:
            raise ValueError(f"model {model.name!r}: unknown phase {ph!r} (use prefill, decode)")
    depths = step_depths(model, group.get("layers"))
    specs: list[Spec] = []
    plans: list[ModelPlan] = []
    for precision, sparsity, pass_ in itertools.product(precisions, sparsities, passes):
        if pass_ == "fwd+bwd":
            plan = ModelPlan(model, precision, str(sparsity), pass_, "train", backend=backend)
            for c in matmul_parts(model):
                spec: Spec = (MatmulSpec(c.shape, precision, sparsity, pass_) if c.kind == "matmul" else
                              AttentionSpec(c.shape, attention_precision(precision), "causal", "auto", pass_))
                specs.append(spec)
                plan.parts.append(Part(c.role, spec.config_id, reference_of(spec).config_id, c.count, GROUPS[c.role]))
            plans.append(plan)
            continue
        for phase in phases:
            plan = ModelPlan(model, precision, str(sparsity), pass_, phase, backend=backend)
            for depth in depths:
                step = StepSpec(model, precision, sparsity, phase, depth if depth != model.n_layers else 0,
                                backend, config, decomposed)
                specs.append(step)
                plan.steps.append(StepRef(step.layers, step.config_id, reference_of(step).config_id))
            hollow_parts = []
            if decomposed and backend == "hwprof":
                # the step's work between its kernels, and its kernels in it: right after the step, so that their
                # families share its block and their rounds alternate with its own (measured minutes apart, a VM's
                # drift between them would read as work no kernel explains)
                for role, hollow, ref in _hollow_steps(model, precision, sparsity, phase, depths):
                    specs += [ref, hollow]
                    hollow_parts.append(Part(role, hollow.config_id, ref.config_id, 1, GROUPS[role]))
            if decomposed:
                for c in components(model, phase):
                    # the part's reference is the kernel as the reference step runs it (fp32, dense, attention
                    # on SDPA's own choice), so the predicted hef is against the measured one's reference
                    spec, ref = _kernel(c, precision, sparsity, model), _kernel(c, "fp32", SparsitySpec("dense"), model)
                    specs += [ref, spec]
                    plan.parts.append(Part(c.role, spec.config_id, ref.config_id, c.count, GROUPS[c.role]))
                plan.parts += hollow_parts
            plans.append(plan)
    return specs, plans


def _hollow_steps(model: ModelShape, precision: str, sparsity: SparsitySpec, phase: str, depths: list[int]):
    """(role, hollow step, its reference) of a plan, at full depth: the glue (every kernel a stub), the ops in
    the step (matmuls stubbed: their weights need no memory), and, where the measured step is dense and at
    full depth, the matmuls in the step (ops stubbed, on the step's real weights, in the step's precision);
    each in-step one with its baseline (its stubs writing as its own do, nothing live)."""
    dense = SparsitySpec("dense")
    kinds = [("glue", {}), (OPS_IN_STEP, {"live_ops": True}), (BASELINE[OPS_IN_STEP], {"writes": "mm"})]
    if sparsity.pattern == "dense" and depths == [model.n_layers]:
        kinds += [(MATMULS_IN_STEP, {"live_matmuls": True}), (BASELINE[MATMULS_IN_STEP], {"writes": "ops"})]
    for role, kind in kinds:
        own = precision if role == MATMULS_IN_STEP else attention_precision(precision)
        yield (role, *(StepSpec(model, p, dense, phase, 0, hollow=True, **kind) for p in (own, "fp32")))


def _model_of(group: dict) -> tuple[ModelShape, str, str, bool]:
    """(shape, backend, config path, decomposed) of a group: a preset or dimensions (hwprof's decoder, or
    `implementation = "transformers"` for transformers' model of the same shape), or a config.json."""
    impl = group.get("implementation", "hwprof")
    if impl not in ("hwprof", "transformers"):
        raise ValueError(f"implementation must be \"hwprof\" or \"transformers\" (got {impl!r})")
    if "config" not in group:
        return from_group(group), impl, "", True
    from hwprof.kernels import hf
    path = group["config"]
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"config must be the path of a config.json (got {path!r})")
    if hf.transformers_version() is None:
        raise ValueError(f"config {path}: building a model from a config.json needs transformers: {hf.INSTALL}")
    config = hf.read_config(path)
    name = group.get("name") or config.model_type
    for key in ("seq_len", "batch", "context"):
        v = group.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "context" else 1)):
            raise ValueError(f"model {name!r}: {key} must be a positive integer (got {v!r})")
    seq, batch, ctx = group.get("seq_len", 128), group.get("batch", 1), group.get("context", 0)
    shape = hf.shape_of(config, name, seq, batch, ctx)
    decomposed = shape is not None
    shape = shape or hf.generic_shape(config, name, seq, batch, ctx)
    return replace(shape, name=name), "transformers", path, decomposed


def model_tags(plans: list[ModelPlan], specs: list[Spec] = ()) -> dict[str, str]:
    """config_id -> the model name(s) whose steps (or reference steps) run it, for the `model` column; with
    the suite's `specs`, also the references those configurations are measured against (kernels.spec)."""
    tags: dict[str, list[str]] = {}
    for plan in plans:
        ids = [(p.config_id, p.reference_id) for p in plan.parts] + [(s.config_id, s.reference_id) for s in plan.steps]
        for pair in ids:
            for cid in pair:
                names = tags.setdefault(cid, [])
                if plan.model.name not in names:
                    names.append(plan.model.name)
    for spec in specs:
        for name in list(tags.get(spec.config_id, [])):
            names = tags.setdefault(reference_of(spec).config_id, [])
            if name not in names:
                names.append(name)
    return {cid: "+".join(names) for cid, names in tags.items()}
