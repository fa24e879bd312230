"""kernels.hf: transformers is imported with Hugging Face's own `kernels` package under that name, not this
checkout's kernels/ folder, which shadows it wherever the checkout's root is on sys.path."""
import subprocess
import sys
from pathlib import Path

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
