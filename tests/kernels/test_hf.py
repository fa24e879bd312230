"""kernels.hf: transformers is imported with Hugging Face's own `kernels` package under that name, not this
checkout's kernels/ folder, which shadows it wherever the checkout's root is on sys.path."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("from hwprof.kernels import hf; hf._unshadow_hub_kernels(); import kernels; "
         "from hwprof.kernels import build_case; print(getattr(kernels, 'HUB', 'ours'), build_case.__module__)")


def _probe(tmp_path) -> str:
    site = tmp_path / "site"
    (site / "kernels").mkdir(parents=True)
    (site / "kernels" / "__init__.py").write_text("HUB = 'hub'\n")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    # `python -c` puts the working directory (the checkout's root) first on sys.path, as pytest does
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_hub_package_takes_the_name_where_the_checkout_shadows_it(tmp_path):
    hub, ours = _probe(tmp_path).split()
    assert hub == "hub" and ours.startswith("hwprof.kernels")      # and the checkout's stays hwprof.kernels


def test_a_transformers_decode_step_extends_the_same_contiguous_cache_every_call():
    pytest.importorskip("transformers")
    import torch
    from transformers import DynamicCache

    from hwprof.kernels import hf
    from hwprof.kernels.model import ModelShape
    model = hf.build_model(hf.hf_config(ModelShape("mini", 64, 2, 4, 2, 128, 256, 16)), torch.float32, 0,
                           torch.device("cpu"))
    past, new = torch.randint(0, 256, (1, 16)), torch.randint(0, 256, (1, 1))
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(past, cache=cache, use_cache=True)
        prefilled = [layer.keys for layer in cache.layers]
        rewind = [hf.Rewinding(layer) for layer in cache.layers]
        first = model(new, cache=cache, use_cache=True).logits
        held = [layer.keys for layer in cache.layers]
        for layer in rewind:
            layer.rewind()
        assert all(r.last["keys"] is k for r, k in zip(rewind, held))      # held until the layer's next update
        second = model(new, cache=cache, use_cache=True).logits
        assert all(r.last is None for r in rewind)
        step = hf.hf_step(model, "decode", 1, 16, 16, 0, torch.device("cpu"))
        assert torch.equal(step(), step())
    assert torch.equal(first, second)                   # the same token against the same 16 cached ones
    for layer, before, last in zip(cache.layers, prefilled, held):
        assert layer.keys.shape[-2] == 17 and layer.keys.is_contiguous()     # its extension, as generation's
        assert torch.equal(layer.keys[..., :16, :], before) and layer.keys is not last
