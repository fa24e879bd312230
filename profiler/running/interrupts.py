"""Ctrl-C and SIGTERM: the sweep stops at its next round's end (or between two builds), with every round kept
so far on disk (running.journal), and says how much was kept. A second signal stops at once."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path


class Interrupted(Exception):
    """The run was stopped by a signal after its journal and rows were flushed; it can be resumed."""

    def __init__(self, run_dir: Path, verb: str = "run", rows: int = 0, rounds: int = 0, configs: int = 0):
        super().__init__(f"interrupted; the run directory {run_dir} can be resumed")
        self.run_dir, self.verb, self.rows, self.rounds, self.configs = run_dir, verb, rows, rounds, configs

    @property
    def kept(self) -> str:
        """What survived, in words: the rows written, and the rounds kept of configurations not yet written."""
        more = f", and {self.rounds} rounds of {self.configs} more configurations" if self.rounds else ""
        return f"{self.rows} rows written{more}"


@contextmanager
def stop_at_round_end(stop: threading.Event):
    """While the block runs: a first SIGINT or SIGTERM sets `stop` (the sweep raises KeyboardInterrupt at its
    next check); a second raises at once. Signals a process started with ignored (a background job's SIGINT)
    stay ignored; outside the main thread signals are left alone."""
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
    except ValueError:                 # not the main thread
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def check(stop: threading.Event) -> None:
    """Where the sweep may stop (between builds, after its set-up): raise if a signal asked it to."""
    if stop.is_set():
        raise KeyboardInterrupt
