"""[[model]] suite groups: a transformer's step expanded into ordinary configurations, and the plan that
combines their rows back into the model (analysis.models)."""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

from hwprof.kernels.model import ModelShape, attention_precision, components, from_group
from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec, Spec, reference_of

MODEL_KEYS = {"name", "preset", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "vocab", "seq_len", "batch",
              "gated_mlp", "passes", "precisions", "sparsity", "device"}


@dataclass(frozen=True)
class Part:
    role: str
    config_id: str
    reference_id: str          # its dense fp32 reference realisation (the model's reference step)
    count: int                 # runs per step


@dataclass
class ModelPlan:
    model: ModelShape
    precision: str
    sparsity: str
    pass_: str
    parts: list[Part] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.model.name, self.precision, self.sparsity, self.pass_

    def to_json(self) -> dict:
        return {"model": self.model.to_json(), "precision": self.precision, "sparsity": self.sparsity,
                "pass": self.pass_, "parts": [asdict(p) for p in self.parts]}

    @classmethod
    def from_json(cls, d: dict) -> "ModelPlan":
        return cls(ModelShape(**d["model"]), d["precision"], d["sparsity"], d["pass"], [Part(**p) for p in d["parts"]])


def expand_model_group(group: dict) -> tuple[list[Spec], list[ModelPlan]]:
    """The configurations of a [[model]] group and one plan per (precision, sparsity, pass); ValueError with
    a one-line reason for a bad shape or name. The suite has checked the group's keys and list types."""
    model = from_group(group)
    precisions = group.get("precisions", ["fp32"])
    sparsities = [SparsitySpec.parse(s) for s in group.get("sparsity", ["dense"])]
    passes = group.get("passes", ["fwd"])
    specs: list[Spec] = []
    plans: list[ModelPlan] = []
    for precision, sparsity, pass_ in itertools.product(precisions, sparsities, passes):
        plan = ModelPlan(model, precision, str(sparsity), pass_)
        for c in components(model):
            if c.kind == "matmul":
                spec: Spec = MatmulSpec(c.shape, precision, sparsity, pass_)
            else:                           # attention: the step's precision, causal, never pruned
                spec = AttentionSpec(c.shape, attention_precision(precision), "causal", "auto", pass_)
            specs.append(spec)
            plan.parts.append(Part(c.role, spec.config_id, reference_of(spec).config_id, c.count))
        plans.append(plan)
    return specs, plans


def model_tags(plans: list[ModelPlan]) -> dict[str, str]:
    """config_id -> the model name(s) whose step (or reference step) runs it, for the `model` column."""
    tags: dict[str, list[str]] = {}
    for plan in plans:
        for part in plan.parts:
            for cid in (part.config_id, part.reference_id):
                names = tags.setdefault(cid, [])
                if plan.model.name not in names:
                    names.append(plan.model.name)
    return {cid: "+".join(names) for cid, names in tags.items()}
