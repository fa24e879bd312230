import pytest
import torch

import hwprof
from hwprof.errors import BadInput
from hwprof.running.session import RunOptions, open_session


def test_thread_count_is_restored_after_run_suite(tiny_suite, fast_options):
    before = torch.get_num_threads()
    df = hwprof.run_suite(str(tiny_suite), threads=1, **fast_options)
    assert torch.get_num_threads() == before
    assert hwprof.load_run(df.attrs["run_dir"]).attrs["meta"]["threads"] == 1


def test_thread_count_is_restored_when_the_session_fails(tiny_suite, tmp_path):
    before = torch.get_num_threads()
    with pytest.raises(BadInput):      # fails after the threads were set (the meter is chosen last)
        open_session(RunOptions(suite=str(tiny_suite), threads=1, energy="magic", out_dir=tmp_path))
    assert torch.get_num_threads() == before


def test_suite_is_parsed_once_and_selected_for_the_device(tmp_path, monkeypatch):
    from hwprof.running import session as session_mod
    calls = []
    real = session_mod.load_suite
    monkeypatch.setattr(session_mod, "load_suite", lambda *a: calls.append(a) or real(*a))
    s = open_session(RunOptions(suite="quick", device="cpu", out_dir=tmp_path, energy="none"))
    assert len(calls) == 1 and calls[0] == ("quick",)
    assert s.device == torch.device("cpu") and s.suite.specs
    assert (s.run_dir / "run.json").exists()
    s.meter.close()
    torch.set_num_threads(s.threads_before)


@pytest.mark.parametrize("opts,needle", [
    (dict(budget_s=-1.0), "budget_s"), (dict(ci_target=0.0), "ci_target"), (dict(threads=0), "CPU threads"),
    (dict(threads=2**70), "CPU threads"), (dict(seed=2**64), "seed"), (dict(seed=1.5), "seed"),
    (dict(cpu_max_ghz=float("inf")), "cpu_max_ghz"), (dict(energy="magic"), "energy meter"),
])
def test_bad_options_are_bad_input_without_cli_words(tiny_suite, tmp_path, opts, needle):
    with pytest.raises(BadInput, match=needle) as e:
        open_session(RunOptions(suite=str(tiny_suite), out_dir=tmp_path / "out", **opts))
    assert "--" not in str(e.value)
    assert not (tmp_path / "out").exists()          # nothing written
