"""hwprof: logical FLOPs against time and energy, and the hidden-efficiency factor of each configuration."""
__version__ = "0.1.0"


def run_suite(*args, **kwargs):
    from profiler.runner import run_suite as _run
    return _run(*args, **kwargs)


def load_run(path):
    from profiler.runner import load_run as _load
    return _load(path)


__all__ = ["__version__", "load_run", "run_suite"]
