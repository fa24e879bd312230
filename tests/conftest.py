import textwrap
from pathlib import Path

import pytest
import torch

def pytest_configure(config):
    """Tests never read or write the user's cache: the measured roofs go to a directory of this session
    (shared by its tests, so a machine's roofs are measured once per test session)."""
    import os
    import tempfile
    os.environ.setdefault("HWPROF_CACHE_DIR", tempfile.mkdtemp(prefix="hwprof-test-cache-"))


@pytest.fixture(autouse=True)
def _no_machine_history(tmp_path, monkeypatch):
    """Each test starts with no history of this machine's reference times: one built by earlier tests' runs
    would flag rows `slow-machine` by chance (running.baseline)."""
    from hwprof.running import baseline
    monkeypatch.setattr(baseline, "KIND", f"baseline-{tmp_path.name}")


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TINY_SUITE = """
name = "tiny"
budget_s = 0.05
ci_target = 0.5
warmup_s = 0.0
min_window_s = 0.0
rounds = 7
round_s = 0.0

[[matmul]]
shapes = [[64, 64, 64]]
precisions = ["fp32", "fp64", "tf32", "int8"]

[[attention]]
shapes = [[1, 2, 32, 32, 16]]
precisions = ["fp32"]
masks = ["causal"]
backends = ["math", "flash", "efficient"]
"""


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(textwrap.dedent(TINY_SUITE))
    return p


@pytest.fixture
def fast_options(tmp_path):
    """RunOptions keywords that keep an end-to-end run to about a second."""
    return dict(out_dir=tmp_path / "reports", energy="none", idle_s=0.0, device_warmup_s=0.0, quiet_check_s=0.0)
