"""Suites: TOML files (or built-in presets) expanded into the list of specs to measure.

Everything is validated before anything runs; problems raise BadInput naming the file and entry.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from hwprof.kernels.spec import AttentionSpec, MatmulSpec, SparsitySpec, Spec, parse_mask, reference_of
from hwprof.compat import tomllib
from hwprof.errors import BadInput
from hwprof.running import bounds
from hwprof.running.modelplan import MODEL_KEYS, ModelPlan, expand_model_group

PRESETS = ("quick", "standard", "full", "schemes")
MAX_SUITE_BYTES = 1 << 20              # a suite file beyond this is not a suite
MAX_DIM = 1 << 20                     # any single dimension beyond this is a typo, not a benchmark
GROUP_KEYS = {
    # `device` (optional): "cpu" or "cuda" - the group only applies when the run's device is of that type,
    # so one preset can hold CPU-sized and GPU-sized work.
    "matmul": {"shapes", "precisions", "sparsity", "passes", "device"},
    "attention": {"shapes", "precisions", "masks", "backends", "passes", "device"},
    "model": MODEL_KEYS,
}


# Timed warm-up before a case's batch is chosen. The probing call at build did the one-time work (kernel
# selection, lazy init), other families' builds and rounds run between it and the case's first round, and
# later rounds follow a rebuild with no warm-up at all: what is left for the warm-up is picking the batch.
WARMUP_S = 0.01
# The settings a suite may give, with their defaults (their bounds: running.bounds).
SETTINGS = {"budget_s": 2.0, "ci_target": 0.02, "warmup_s": WARMUP_S, "min_window_s": 1.0, "rounds": 8,
            "round_s": 0.1, "span_s": 120.0}
TOP_KEYS = {"name", "device", "matmul", "attention", "model", *SETTINGS}


@dataclass
class Suite:
    name: str
    source: str                        # preset name or file path
    device: str = "auto"
    budget_s: float = SETTINGS["budget_s"]
    ci_target: float = SETTINGS["ci_target"]
    warmup_s: float = SETTINGS["warmup_s"]
    min_window_s: float = SETTINGS["min_window_s"]
    rounds: int = SETTINGS["rounds"]      # paired rounds at least per configuration
    round_s: float = SETTINGS["round_s"]  # each side's window in a round
    span_s: float = SETTINGS["span_s"]    # estimated sampling per block of interleaved passes
    specs: list[Spec] = field(default_factory=list)    # what runs: for_device's selection, references first
    raw: dict = field(default_factory=dict)
    # every expanded configuration with the device type its group is restricted to (None: any device)
    candidates: list[tuple[Spec, str | None]] = field(default_factory=list)
    models: list[ModelPlan] = field(default_factory=list)     # [[model]] plans selected for the device
    model_candidates: list[tuple[ModelPlan, str | None]] = field(default_factory=list)

    def for_device(self, device_type: str | None) -> "Suite":
        """The suite as it runs on one device type: device-specific groups selected, references added."""
        def applies(only: str | None) -> bool:
            return only is None or device_type is None or only == device_type
        specs = [s for s, only in self.candidates if applies(only)]
        if not specs:
            raise BadInput(f"suite {self.source}: no configurations for device type {device_type}")
        return replace(self, specs=with_references(specs), models=[p for p, only in self.model_candidates if applies(only)])

    def resolved(self) -> dict:
        """What run.json stores and a resumed run compares: the exact configurations and settings."""
        return {"name": self.name, "source": self.source, "device": self.device, "budget_s": self.budget_s,
                "ci_target": self.ci_target, "warmup_s": self.warmup_s, "min_window_s": self.min_window_s,
                "rounds": self.rounds, "round_s": self.round_s, "span_s": self.span_s,
                "config_ids": [s.config_id for s in self.specs], "models": [p.to_json() for p in self.models]}


MODEL_SUITE_SETTINGS = {"budget_s": 1.6, "min_window_s": 0.8, "rounds": 8, "round_s": 0.1, "warmup_s": WARMUP_S,
                        "ci_target": 0.02}


def model_suite(preset: str) -> dict:
    """`model:NAME`: one [[model]] group of a shipped shape in fp32 and bf16, with the quick suite's timing."""
    from hwprof.kernels.model import PRESETS as MODELS
    if preset not in MODELS:
        raise BadInput(f"suite model:{preset}: no such model preset (presets: {', '.join(MODELS)})")
    return {"name": f"model-{preset}", **MODEL_SUITE_SETTINGS,
            "model": [{"preset": preset, "precisions": ["fp32", "bf16"]}]}


def load_suite(name_or_path: str, device_type: str | None = None) -> Suite:
    """Load a preset, `model:NAME` or a TOML file; `device_type` ("cpu"/"cuda") selects device-specific
    groups."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise BadInput(f"suite {name_or_path!r}: empty (a preset: {', '.join(PRESETS)}, model:NAME or a TOML file)")
    if name_or_path.startswith("model:"):
        return suite_from_data(model_suite(name_or_path.split(":", 1)[1]), name_or_path, device_type)
    if name_or_path in PRESETS:
        text = resources.files("hwprof").joinpath(f"presets/{name_or_path}.toml").read_text()
        return parse_suite(text, name_or_path, device_type)
    path = Path(name_or_path)
    if not path.suffix == ".toml" and not path.exists():
        raise BadInput(f"suite {name_or_path!r}: not a preset ({', '.join(PRESETS)}) and no such file")
    try:
        # a FIFO or a device would block the read or never end: only a regular file of a suite's size is read
        if not path.exists():
            raise BadInput(f"suite {name_or_path}: no such file")
        if not path.is_file():
            raise BadInput(f"suite {name_or_path}: not a regular file")
        if path.stat().st_size > MAX_SUITE_BYTES:
            raise BadInput(f"suite {name_or_path}: {path.stat().st_size} bytes, more than a suite's "
                           f"{MAX_SUITE_BYTES} at most")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"suite {name_or_path}: cannot read ({e.__class__.__name__}: {e})") from None
    return parse_suite(text, str(path), device_type)


def parse_suite(text: str, source: str = "<suite>", device_type: str | None = None) -> Suite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"suite {source}: not valid TOML ({e})") from None
    except RecursionError:
        raise BadInput(f"suite {source}: not valid TOML (nested too deeply)") from None
    return suite_from_data(data, source, device_type)


def suite_from_data(data: dict, source: str, device_type: str | None = None) -> Suite:
    """Build a suite from parsed TOML (also how a resumed run rebuilds the suite stored in run.json)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise BadInput(f"suite {source}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(TOP_KEYS))})")
    suite = Suite(
        name=_str(data.get("name", Path(source).stem), f"suite {source}: name"),
        source=source,
        device=_str(data.get("device", "auto"), f"suite {source}: device"),
        **{key: _bounded(data, key, default, source) for key, default in SETTINGS.items()},
        raw=data,
    )
    candidates: list[tuple[Spec, str | None]] = []
    shapes: dict[str, object] = {}             # model name -> its shape (one name, one shape)
    for kind in ("matmul", "attention", "model"):
        groups = data.get(kind, [])
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise BadInput(f"suite {source}: [[{kind}]] must be an array of tables")
        for i, group in enumerate(groups, 1):
            where = f"suite {source}: [[{kind}]] #{i}"
            unknown = set(group) - GROUP_KEYS[kind]
            if unknown:
                raise BadInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                               f"(allowed: {', '.join(sorted(GROUP_KEYS[kind]))})")
            only = group.get("device")
            if only is not None and only not in ("cpu", "cuda"):
                raise BadInput(f"{where}: device {only!r} must be \"cpu\" or \"cuda\"")
            if kind != "model":
                try:
                    expanded = _expand_group(kind, group, where)
                except ValueError as e:
                    raise BadInput(f"{where}: {e}") from None
                candidates += [(spec, only) for spec in expanded]
                continue
            for key in ("precisions", "sparsity", "passes", "phases"):       # the checks every group's lists get
                for value in _list(group, key, where, default=[]):
                    _str(value, f"{where}: {key}")
            for key in ("name", "preset", "config", "family", "implementation"):
                if key in group:
                    _str(group[key], f"{where}: {key}")
            try:
                specs, plans = expand_model_group(group)
            except (ValueError, TypeError) as e:
                raise BadInput(f"{where}: {e}") from None
            name = plans[0].model.name
            if shapes.setdefault(name, plans[0].model) != plans[0].model:
                raise BadInput(f"{where}: model name {name!r} is used twice with different shapes")
            candidates += [(spec, only) for spec in specs]
            suite.model_candidates += [(plan, only) for plan in plans]
    if not candidates:
        raise BadInput(f"suite {source}: no [[matmul]], [[attention]] or [[model]] configurations")
    suite.candidates = candidates
    return suite.for_device(device_type)


def _expand_group(kind: str, g: dict, where: str) -> list[Spec]:
    shapes = [_shape(s, where) for s in _list(g, "shapes", where, required=True)]
    precisions = [_str(p, f"{where}: precision") for p in _list(g, "precisions", where, default=["fp32"])]
    passes = [_str(p, f"{where}: pass") for p in _list(g, "passes", where, default=["fwd"])]
    if kind == "matmul":
        sparsity = [SparsitySpec.parse(_str(s, f"{where}: sparsity")) for s in _list(g, "sparsity", where, default=["dense"])]
        return [MatmulSpec(shape, p, sp, ps) for shape, p, sp, ps in itertools.product(shapes, precisions, sparsity, passes)]
    masks = [parse_mask(_str(m, f"{where}: mask")) for m in _list(g, "masks", where, default=["none"])]
    backends = [_str(b, f"{where}: backend") for b in _list(g, "backends", where, default=["auto"])]
    return [AttentionSpec(shape, p, m, b, ps)
            for shape, p, m, b, ps in itertools.product(shapes, precisions, masks, backends, passes)]


def with_references(specs: list[Spec]) -> list[Spec]:
    """Dedupe, and put each configuration's reference realisation first (added when the suite lacks it),
    so a row's hef can be computed the moment it is written."""
    out: list[Spec] = []
    seen: set[str] = set()
    for spec in specs:
        for s in (reference_of(spec), spec):
            if s.config_id not in seen:
                seen.add(s.config_id)
                out.append(s)
    return out


def _list(g: dict, key: str, where: str, required: bool = False, default=None) -> list:
    if key not in g:
        if required:
            raise BadInput(f"{where}: missing {key!r}")
        return list(default)
    value = g[key]
    if not isinstance(value, list) or not value:
        raise BadInput(f"{where}: {key!r} must be a non-empty list")
    return value


def _shape(s, where: str) -> tuple[int, ...]:
    if not isinstance(s, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in s):
        raise BadInput(f"{where}: shape {s!r} must be a list of integers")
    if any(x <= 0 for x in s):
        raise BadInput(f"{where}: shape {s} has a non-positive dimension")
    if any(x > MAX_DIM for x in s):
        raise BadInput(f"{where}: shape {s} has a dimension above {MAX_DIM}")
    return tuple(s)


def _str(v, what: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise BadInput(f"{what} must be a non-empty string (got {v!r})")
    return v


def _bounded(data: dict, key: str, default, source: str):
    """A suite setting within its bounds (running.bounds: the same as the flag's)."""
    try:
        return bounds.check(key, data.get(key, default))
    except ValueError as e:
        raise BadInput(f"suite {source}: {key} {e}") from None
