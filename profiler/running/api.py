"""The Python API: run a suite and get a DataFrame; read a run directory back."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from hwprof.running.results import read_results
from hwprof.running.rundir import read_run_json
from hwprof.running.runner import execute
from hwprof.running.session import RunOptions


def run_suite(suite: str = "quick", **kwargs) -> pd.DataFrame:
    """Run a suite (preset name or TOML path) and return its results; keyword arguments are RunOptions
    fields. The run directory is kept (df.attrs['run_dir']); torch's thread count is restored afterwards."""
    if "out_dir" in kwargs:
        kwargs["out_dir"] = Path(kwargs["out_dir"])
    result = execute(RunOptions(suite=suite, **kwargs))
    df = result.results
    df.attrs["run_dir"] = str(result.run_dir)
    return df


def load_run(path: str | Path) -> pd.DataFrame:
    """Read a run directory's results.csv as a DataFrame (run.json metadata in df.attrs['meta'])."""
    meta = read_run_json(Path(path))
    df = read_results(Path(path) / "results.csv")
    df.attrs["meta"] = meta
    df.attrs["run_dir"] = str(path)
    return df
