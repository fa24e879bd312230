"""Making the traced call: one call of a case with oneDNN's and MKL's call logs and torch.profiler on
(measuring.impl parses what they say). Both logs are printed by C code to the process's stdout, so fds 1 and 2
are redirected to files for the call (the profiler's own messages go to fd 2).
"""
from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

from hwprof.measuring.impl import Impl, _Event, summarize_trace


@dataclass
class Trace:
    """Filled in when a `capture_impl` block ends."""
    impl: Impl = field(default_factory=Impl)


_LIBC = None


def _flush_c_stdio() -> None:
    global _LIBC
    try:
        _LIBC = _LIBC or ctypes.CDLL(None)
        _LIBC.fflush(None)
    except (OSError, AttributeError):
        pass


@contextmanager
def redirect_fds() -> Iterator[list[str]]:
    """fds 1 and 2 into temporary files for the block; yields a list that receives what fd 1 got."""
    got: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield got
        finally:
            _flush_c_stdio()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            out.seek(0)
            got.append(out.read().decode(errors="replace"))


@contextmanager
def capture_impl(device: torch.device) -> Iterator[Trace]:
    """Record what the block runs (one call of a case): oneDNN and MKL call logs, dispatched ops and, on
    CUDA, kernel names. Failing to read the logs (no real fds, an unusual libc) is not fatal: the
    profiler's ops are still reported and `logged` says the logs were missing."""
    from torch.profiler import ProfilerActivity, profile
    trace = Trace()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    try:
        redirect = redirect_fds()
        got = redirect.__enter__()
    except (OSError, ValueError, AttributeError):
        redirect, got = None, None
    ok = False
    try:
        with _verbose(), profile(activities=activities) as prof:
            yield trace
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        ok = True
    finally:
        if redirect is not None:
            redirect.__exit__(None, None, None)
        if ok:
            events, cuda = [], []
            for e in prof.events():
                if str(getattr(e, "device_type", "")).endswith("CUDA"):
                    cuda.append(e.name)
                else:
                    events.append(_Event(e.name, e.cpu_parent.name if e.cpu_parent is not None else None))
            impl = summarize_trace(got[0] if got else "", events, cuda)
            trace.impl = impl if got else Impl((), impl.ops, (), logged=False)


@contextmanager
def _verbose():
    """oneDNN and MKL call logs on for the block (where this torch build has them)."""
    stack = []
    try:
        if torch.backends.mkldnn.is_available():
            stack.append(torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON))
        if torch.backends.mkl.is_available():
            stack.append(torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON))
    except (AttributeError, RuntimeError):
        pass
    for cm in stack:
        cm.__enter__()
    try:
        yield
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)


def import_profiler() -> None:
    """What torch.profiler imports at its first use (torch._dynamo, ~1.5 s): imported ahead, in a thread,
    while the run is idle anyway."""
    import torch._dynamo  # noqa: F401


def warm_call_logs() -> None:
    """MKL's call log starts up in the first call made with it on (0.2-0.9 s here), for the whole process:
    safe to pay in a background thread while the run is idle anyway (nothing else prints then; the thread's
    OpenMP team ends with it)."""
    a = torch.ones(8, 8)
    with redirect_fds(), _verbose():
        a @ a


def warm_libraries(device: torch.device) -> None:
    """Pay, once, what the first traced call of a process would otherwise carry: the profiler's first use
    (it imports torch._dynamo, ~1.5 s, unless `import_profiler` ran), MKL's and oneDNN's start-up with their
    logs on. A case's probing call then carries only its own one-time costs, and a long one can stand in
    for a window."""
    a = torch.ones(64, 64, device=device)
    with capture_impl(device):
        a @ a
        a.to(torch.bfloat16) @ a.to(torch.bfloat16)
