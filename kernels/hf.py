"""Hugging Face transformers, where it is installed (`pip install 'hwprof[models]'`): the same model as a
hwprof shape, built from a config with random weights (nothing is downloaded), and its prefill and decode
calls as a user's code makes them.

- `hf_config(shape)`: a LlamaConfig or GPT2Config of hwprof's shape (what `validate --model` compares with);
- `shape_of(config)`: hwprof's shape of a llama-like or GPT-2 config (for the step's kernel decomposition);
- `hf_step(model, ...)`: prefill is `model(ids, use_cache=False)`; decode is one token with a DynamicCache of
  `context` tokens (filled by a prefill of them once), cropped back after the call so every call does the
  same work, as a generation loop's step does.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from typing import Callable

import torch

from hwprof.kernels.errors import Unsupported
from hwprof.kernels.model import ModelShape

INSTALL = "pip install 'hwprof[models]' (in a checkout: pip install -e '.[models]')"
LLAMA_LIKE = ("llama", "mistral")         # the architectures kernels.decoder's llama family computes
ROPE_THETA = 500000.0                      # Llama 3's, kernels.ops.rotary_tables' default


def _unshadow_hub_kernels() -> None:
    """This repository's kernels/ folder (installed as hwprof.kernels) is also a top-level `kernels` package
    wherever the checkout's root is on sys.path (pytest from the root, `python -m hwprof` there), and
    transformers 5 imports Hugging Face's own `kernels` package by that name: it then found ours and failed
    with an ImportError inside a model's build. Load Hugging Face's package first, from the path without
    the checkout, so that the name is taken by the package transformers means."""
    if "kernels" in sys.modules:
        return
    ours = Path(__file__).resolve().parent
    path = [p for p in sys.path if (Path(p or ".").resolve() / "kernels") != ours]
    if len(path) == len(sys.path):
        return                                      # nothing shadows it: a plain import finds the right one
    spec = importlib.machinery.PathFinder.find_spec("kernels", path)
    if spec is None or spec.loader is None:
        return                                      # not installed: transformers does without it
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernels"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:                               # a broken install: leave the name free, as before
        del sys.modules["kernels"]


def transformers_version() -> str | None:
    _unshadow_hub_kernels()
    # transformers imports torchao where it is installed, and torchao warns of every CUDA extension it cannot
    # load: imported quietly first, the later import is a lookup
    from hwprof.kernels.quantized import torchao_version
    torchao_version()
    try:
        import transformers
    except ImportError:
        return None
    return transformers.__version__


def _require() -> None:
    if transformers_version() is None:
        raise Unsupported(f"this step needs Hugging Face transformers, which is not installed: {INSTALL}")


def hf_config(m: ModelShape):
    """The transformers config of hwprof's shape: same dimensions, SDPA attention."""
    _require()
    from transformers import GPT2Config, LlamaConfig
    if m.family == "gpt2":
        return GPT2Config(n_embd=m.d_model, n_layer=m.n_layers, n_head=m.n_heads, n_inner=m.d_ff, vocab_size=m.vocab,
                          n_positions=m.max_positions, attn_implementation="sdpa")
    return LlamaConfig(hidden_size=m.d_model, num_hidden_layers=m.n_layers, num_attention_heads=m.n_heads,
                       num_key_value_heads=m.n_kv_heads, intermediate_size=m.d_ff, vocab_size=m.vocab,
                       max_position_embeddings=max(4096, m.max_positions), rms_norm_eps=1e-6, tie_word_embeddings=False,
                       rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA}, attn_implementation="sdpa")


def read_config(path: str | Path):
    """A transformers config from a config.json (ValueError with a one-line reason when it is not one)."""
    _require()
    from transformers import AutoConfig
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"config {path}: cannot read it as JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ValueError(f"config {path}: no model_type (a transformers config.json has one)")
    kind = data.pop("model_type")
    try:
        config = AutoConfig.for_model(kind, **data)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"config {path}: transformers cannot build a {kind!r} config ({str(e).splitlines()[0]})") from None
    config._attn_implementation = "sdpa"
    return config


def shape_of(config, name: str, seq_len: int, batch: int = 1, context: int = 0) -> ModelShape | None:
    """hwprof's shape of a llama-like or GPT-2 config; None for an architecture kernels.decoder does not
    compute (its whole step is still measured, with transformers)."""
    kind = getattr(config, "model_type", "")
    if kind in LLAMA_LIKE and not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False):
        heads = config.num_attention_heads
        if getattr(config, "head_dim", None) not in (None, config.hidden_size // heads):
            return None
        return ModelShape(name, config.hidden_size, config.num_hidden_layers, heads,
                          getattr(config, "num_key_value_heads", None) or heads, config.intermediate_size,
                          config.vocab_size, seq_len, batch, True, "llama", context)
    if kind == "gpt2":
        return ModelShape(name, config.n_embd, config.n_layer, config.n_head, config.n_head,
                          config.n_inner or 4 * config.n_embd, config.vocab_size, seq_len, batch, False, "gpt2", context)
    return None


def generic_shape(config, name: str, seq_len: int, batch: int = 1, context: int = 0) -> ModelShape:
    """The dimensions of any causal LM config as a shape (batch, tokens and context of its steps, its layers
    and its size for memory estimates); its kernels are not decomposed (`shape_of` is None for it)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    d = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None) or getattr(text, "d_model", 0)
    layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None) or getattr(text, "num_layers", 1)
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", None) or 1
    kv = getattr(text, "num_key_value_heads", None) or heads
    if d % heads or heads % kv:
        heads = kv = 1
    ff = getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * d
    return ModelShape(name, d, layers, heads, kv, ff, text.vocab_size, seq_len, batch, True, "llama", context)


def build_model(config, dtype: torch.dtype, seed: int, device: torch.device, depth: int | None = None):
    """A transformers causal LM of `config` (with `depth` layers when given) with seeded random weights."""
    _require()
    import copy

    from transformers import AutoModelForCausalLM
    config = copy.deepcopy(config)
    if depth is not None:
        for attr in ("num_hidden_layers", "n_layer"):
            if hasattr(config, attr):
                setattr(config, attr, depth)
    from hwprof.kernels.quantized import _quiet_loggers
    torch.manual_seed(seed)
    # initialised in fp32 and cast: the same model in every dtype (its reference too); quietly, as the modules
    # a model's build imports register torchao's enums with torch, which warns of each
    with torch.device(device), _quiet_loggers("torchao", "torch.utils._pytree"):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    return model.to(dtype).eval().requires_grad_(False)


def hf_step(model, phase: str, batch: int, seq_len: int, context: int, seed: int, device) -> Callable[[], torch.Tensor]:
    """One prefill or decode step of a transformers model, as a callable returning the logits."""
    from transformers import DynamicCache
    vocab = model.config.get_text_config(decoder=True).vocab_size
    gen = torch.Generator(device=device).manual_seed(seed + 2)
    ids = torch.randint(0, vocab, (batch, seq_len), generator=gen, device=device)
    past = torch.randint(0, vocab, (batch, context), generator=gen, device=device)
    new = torch.randint(0, vocab, (batch, 1), generator=gen, device=device)
    if phase == "prefill":
        return lambda: model(ids, use_cache=False).logits
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(past, cache=cache, use_cache=True)
    rewind = [Rewinding(layer) for layer in cache.layers]

    def step() -> torch.Tensor:
        for layer in rewind:
            layer.rewind()
        return model(new, cache=cache, use_cache=True).logits
    return step


class Rewinding:
    """A cache layer that every decode step extends from its state after the prefill: every step starts from
    the same contiguous cache of `context` tokens (`crop(-1)` would leave a strided view of a longer tensor).
    The layer's last extension is held until its next one is written, then freed, as generation frees a
    layer's old keys when its new ones replace them (freed at the step's start instead, the next concatenation
    would be written into a block just freed and hot in cache, which generation's never is)."""

    def __init__(self, layer):
        self.layer, self.prefilled, self.last = layer, dict(vars(layer)), None
        update = layer.update

        def update_then_free_the_last(*args, **kwargs):
            out = update(*args, **kwargs)
            self.last = None
            return out
        layer.update = update_then_free_the_last

    def rewind(self) -> None:
        self.last = dict(vars(self.layer))
        vars(self.layer).update(self.prefilled)
