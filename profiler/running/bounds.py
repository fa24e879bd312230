"""One set of bounds for every number a run takes, whether it comes from a suite file, a flag, the Python API
or a resumed run's run.json: a value is accepted or refused the same way wherever it was written.

`check` raises ValueError with the reason in words; callers add where the value came from (the suite file
and key, the flag) and turn it into their own error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    what: str                     # the value in words, for messages
    low: float
    high: float
    integer: bool = False
    low_open: bool = False        # the low end itself is refused: (low, high]

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


SEED_MAX = 2**63 - 1              # torch.manual_seed takes a signed 64-bit integer
BOUNDS: dict[str, Bound] = {
    "budget_s": Bound("budget per configuration in seconds", 0, 3600, low_open=True),
    "ci_target": Bound("relative CI half-width target", 0, 1, low_open=True),
    "warmup_s": Bound("warm-up in seconds", 0, 600),
    "min_window_s": Bound("minimum window in seconds", 0, 600),
    "rounds": Bound("paired rounds per configuration", 1, 1000, integer=True),
    "round_s": Bound("window of a round in seconds", 0, 60),
    "span_s": Bound("sampling per block in seconds", 0, 86400),
    "threads": Bound("CPU threads", 1, 4096, integer=True),
    "seed": Bound("seed", 0, SEED_MAX, integer=True),
    "cpu_tdp_watts": Bound("CPU TDP in watts", 0, 10_000, low_open=True),
    "cpu_max_ghz": Bound("maximum CPU clock in GHz", 0, 20, low_open=True),
    "quiet_check_s": Bound("quiet check in seconds", 0, 3600),
    "wait_quiet_s": Bound("wait for a quiet machine in seconds", 0, 86400),
    "local_nodes": Bound("local fleet nodes", 1, 1024, integer=True),
    "retries": Bound("retries of a task", 0, 100, integer=True),
}


def check(name: str, value):
    """`value` if it lies within `name`'s bounds (an int for an integer bound, else a float); ValueError saying
    why not. bool is not a number here, nor is a float where an integer is asked for (rounds = 0.5)."""
    b = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be {b.describe()} (got {value!r})")
    if b.integer and not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer()):
            raise ValueError(f"must be {b.describe()} (got {value!r})")
        value = int(value)
    if not b.integer and not math.isfinite(value):
        raise ValueError(f"must be {b.describe()} (got {value!r})")
    low_ok = value > b.low if b.low_open else value >= b.low
    if not (low_ok and value <= b.high):
        raise ValueError(f"must be {b.describe()} (got {value!r})")
    return int(value) if b.integer else float(value)


def parse(name: str, text: str):
    """A flag's text checked against `name`'s bounds (ValueError as `check`)."""
    b = BOUNDS[name]
    try:
        value = int(text) if b.integer else float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {'an integer' if b.integer else 'a number'}") from None
    return check(name, value)
