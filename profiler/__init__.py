"""hwprof: logical FLOPs against time and energy, and the hidden-efficiency factor of each configuration.

Python API: `hwprof.run_suite(...)` runs a suite and returns a DataFrame; `hwprof.load_run(path)` reads
one back. Both are imported lazily so `import hwprof` stays cheap.
"""
from hwprof.version import __version__


def run_suite(*args, **kwargs):
    from hwprof.running.api import run_suite as _run
    return _run(*args, **kwargs)


def load_run(path):
    from hwprof.running.api import load_run as _load
    return _load(path)


__all__ = ["__version__", "load_run", "run_suite"]
