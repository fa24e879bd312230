"""The decoder a step measures: its kernels are the components kernels.model lists (FLOPs and dispatched ops),
a hollow step runs the same structure without kernels, and the model is transformers' own model: the same
random weights loaded into transformers' LlamaForCausalLM or GPT2LMHeadModel give the same logits."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hwprof.kernels.decoder import Decoder, random_cache, step_inputs
from hwprof.kernels.model import ModelShape, components
from hwprof.kernels.step import StepSpec

LLAMA = ModelShape("mini-llama", 32, 2, 4, 2, 48, 64, 8)
GPT2 = ModelShape("mini-gpt2", 32, 2, 4, 4, 128, 64, 8, gated_mlp=False)


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _run(m, phase, model=None):
    model = model or Decoder(m)
    ids = step_inputs(m, phase, 0, "cpu")
    cache = random_cache(m, m.kv_context, model.depth, torch.float32, 0, "cpu") if phase == "decode" else None
    with torch.inference_mode():
        return model(ids, cache)


@pytest.mark.parametrize("m", [LLAMA, GPT2], ids=["llama", "gpt2"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_the_steps_logical_flops_are_its_components_and_flopcountermode_agrees(m, phase):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:   # math: SDPA as bmm, counted
        _run(m, phase)
    assert counter.get_total_flops() == StepSpec(m, "fp32", phase=phase).logical_flops


@pytest.mark.parametrize("m", [LLAMA, GPT2], ids=["llama", "gpt2"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_the_steps_matmuls_and_attention_calls_are_the_components_counts(m, phase):
    model = Decoder(m)
    with Ops() as ops:                        # under inference mode: the composite ops, as the step calls them
        _run(m, phase, model)
    parts = components(m, phase)
    linears = sum(c.count for c in parts if c.kind in ("linear", "conv1d"))
    attention = sum(c.count for c in parts if c.kind == "attention")
    assert sum(ops.seen.count(op) for op in ("linear", "mm", "addmm")) == linears
    assert sum("scaled_dot_product" in op for op in ops.seen) == attention
    rotary = sum(c.count for c in parts if c.op == "rotary")
    tables = 1 if m.family == "llama" else 0
    # rotate_half's (q and k), the rotary tables' and (decode) the cache's concatenations
    assert ops.seen.count("cat") == 2 * rotary + tables + sum(c.count for c in parts if c.op == "kv_append")
    assert ops.seen.count("embedding") == sum(c.count for c in parts if c.op == "embedding")


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_a_hollow_step_runs_the_same_structure_with_meta_weights_and_no_kernel(phase):
    hollow = Decoder(LLAMA, hollow=torch.float32)
    assert all(p.device.type == "meta" for p in hollow.parameters())
    with Ops() as ops:
        out = _run(LLAMA, phase, hollow)
    assert out.shape == _run(LLAMA, phase).shape
    assert not {"mm", "addmm", "_scaled_dot_product_flash_attention_for_cpu", "rsqrt", "silu"} & set(ops.seen)


def _seen(m, phase, live):
    """The ops a hollow step `live` dispatches and those of the whole step, checking it gives the same shape."""
    whole = Decoder(m)
    with Ops() as ops:
        out = _run(m, phase, live)
    with Ops() as full:
        assert out.shape == _run(m, phase, whole).shape
    return ops.seen, full.seen


@pytest.mark.parametrize("m", [LLAMA, GPT2], ids=["llama", "gpt2"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_a_hollow_step_with_live_ops_runs_every_op_and_no_matmul_or_attention(m, phase):
    live = Decoder(m, hollow=torch.float32, live_ops=True)
    real = {n for n, p in live.named_parameters() if p.device.type != "meta"}
    assert real and all("norm" in n or n.startswith(("embed", "positions", "final")) for n in real)
    seen, full = _seen(m, phase, live)
    stubbed = {"linear", "addmm", "t", "scaled_dot_product_attention"}
    assert not stubbed & set(seen)
    writes = {"zeros", "empty_like", "copy_"}        # the stubs' outputs, made once, written fresh each call
    others = lambda ops: sorted(op for op in ops if op not in stubbed | writes)    # noqa: E731
    assert others(seen) == others(full)              # every op of the real step, as often
    # each matmul's and attention's stub writes its output, for the ops to read as the step's would
    assert seen.count("copy_") == seen.count("empty_like") == sum(full.count(op) for op in stubbed - {"t"})


@pytest.mark.parametrize("m", [LLAMA, GPT2], ids=["llama", "gpt2"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_a_hollow_step_with_live_matmuls_runs_every_matmul_and_attention_and_no_op(m, phase):
    live = Decoder(m, hollow=torch.float32, live_matmuls=True)
    assert all(p.device.type != "meta" for p in live.parameters())        # the layers' weights are real
    seen, full = _seen(m, phase, live)
    matmuls = lambda ops: sorted(op for op in ops if op in ("linear", "addmm", "scaled_dot_product_attention"))  # noqa: E731
    assert matmuls(seen) and matmuls(seen) == matmuls(full)              # every one, as often
    assert not {"embedding", "rsqrt", "layer_norm", "silu", "gelu", "cat"} & set(seen)
    # each op's stub writes its output (rotary: q and k), for the matmuls to read as the step's would
    outputs = sum(c.count * (2 if c.op == "rotary" else 1) for c in components(m, phase) if c.kind == "op")
    assert seen.count("copy_") == seen.count("empty_like") == outputs
    with pytest.raises(ValueError, match="not both"):
        Decoder(m, hollow=torch.float32, live_ops=True, live_matmuls=True)


def _hf_twin(m, ours):
    """transformers' model of the shape with our decoder's weights."""
    from hwprof.kernels import hf
    model = hf.build_model(hf.hf_config(m), torch.float32, 0, torch.device("cpu"))
    sd = {}
    if m.family == "llama":
        sd["model.embed_tokens.weight"], sd["model.norm.weight"], sd["lm_head.weight"] = ours.embed, ours.final, ours.lm_head.weight
        for i, layer in enumerate(ours.layers):
            p = f"model.layers.{i}."
            for ours_name, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "o_proj")):
                sd[p + f"self_attn.{theirs}.weight"] = getattr(layer.attn, ours_name).weight
            for name in ("gate", "up", "down"):
                sd[p + f"mlp.{name}_proj.weight"] = getattr(layer, name).weight
            sd[p + "input_layernorm.weight"], sd[p + "post_attention_layernorm.weight"] = layer.norm1, layer.norm2
    else:
        sd["transformer.wte.weight"], sd["lm_head.weight"] = ours.embed, ours.embed
        sd["transformer.wpe.weight"] = ours.positions[: model.config.n_positions]
        sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"] = ours.final, ours.final_b
        for i, layer in enumerate(ours.layers):
            p = f"transformer.h.{i}."
            for theirs, mod in (("attn.c_attn", layer.attn.qkv), ("attn.c_proj", layer.attn.o),
                                ("mlp.c_fc", layer.up), ("mlp.c_proj", layer.down)):
                sd[p + theirs + ".weight"], sd[p + theirs + ".bias"] = mod.weight, mod.bias
            sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = layer.norm1, layer.norm1_b
            sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = layer.norm2, layer.norm2_b
    missing = model.load_state_dict({k: v.detach() for k, v in sd.items()}, strict=False)
    assert not missing.missing_keys or all("rotary" in k or "bias" in k for k in missing.missing_keys), missing
    return model


@pytest.mark.parametrize("m", [LLAMA, GPT2], ids=["llama", "gpt2"])
def test_the_decoder_computes_what_transformers_computes(m):
    from hwprof.kernels import hf
    if hf.transformers_version() is None:
        pytest.skip("transformers is not installed")
    from transformers import DynamicCache
    ours = Decoder(m)
    theirs = _hf_twin(m, ours)
    ids = step_inputs(m, "prefill", 0, "cpu")
    with torch.inference_mode():
        torch.testing.assert_close(ours(ids), theirs(ids, use_cache=False).logits, rtol=1e-4, atol=1e-5)
        cache = DynamicCache(config=theirs.config)
        theirs(ids, cache=cache, use_cache=True)                   # transformers' cache of the sequence...
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        new = step_inputs(m, "decode", 0, "cpu")
        want = theirs(new, cache=cache, use_cache=True).logits
        torch.testing.assert_close(ours(new, kv), want, rtol=1e-4, atol=1e-5)   # ... is ours to decode against


def test_a_decode_step_holds_each_layers_extended_cache_until_the_next_step_replaces_it():
    model = Decoder(LLAMA)
    ids = step_inputs(LLAMA, "decode", 0, "cpu")
    cache = random_cache(LLAMA, LLAMA.kv_context, model.depth, torch.float32, 0, "cpu")
    with torch.inference_mode():
        first = model(ids, cache)
        held = [layer.attn.extended for layer in model.layers]
        second = model(ids, cache)
    assert torch.equal(first, second)                           # every call extends the same context
    for layer, (k, v), (k0, _) in zip(model.layers, held, cache):
        new_k, new_v = layer.attn.extended
        assert new_k.shape[2] == LLAMA.kv_context + 1 and torch.equal(new_k[:, :, :-1], k0)
        assert new_k is not k and new_v is not v                # the last step's, replaced
