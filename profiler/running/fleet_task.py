"""The body of one fleet task: the ordinary runner on one device of one node, streaming what it measures.

It runs inside a Ray worker (running.fleet wraps it as a remote generator) but knows nothing of Ray: it is
a generator of ("node", info), ("row", row), ("warning", text), ("end", run meta) items, so it can be
tested, and reasoned about, without a cluster.
"""
from __future__ import annotations

import hashlib
import os
import platform
import queue
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hwprof.errors import BadInput

_DONE = object()
FLUSH_BEFORE_CRASH_S = 1.0        # fault injection: the time Ray gets to deliver what was sent


@dataclass
class TaskSpec:
    key: str                          # the task's place in the fleet: "node <id>" or "gpu <n> of node <id>"
    node_id: str
    kind: str                         # "cpu" (the whole node) or "cuda" (one GPU, Ray pins CUDA_VISIBLE_DEVICES)
    suite_source: str
    suite_data: dict
    run_kwargs: dict = field(default_factory=dict)     # RunOptions fields (energy, threads, budget_s, ...)
    prior_rows: list[dict] = field(default_factory=list)   # the fleet's rows so far: this device's are kept
    fail_after_rows: int | None = None                 # fault injection for tests: die like a crashed node
    logical: str = ""                                  # a logical node of one machine ("local-0"), else ""
    # The task's run directory on its node, the same for every attempt (the fleet run's name and the task's
    # key): a retry resumes it, so the passes and rounds a dead attempt finished are not measured again.
    work_dir: str = ""


TASKS_DIR = "hwprof-fleet-tasks"     # under the node's temporary directory


def work_dir_name(fleet_run: str, key: str) -> str:
    """A task's work_dir: its fleet run's directory name and a digest of its key (keys hold node ids)."""
    return f"{fleet_run}/{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def task_out_dir(spec: TaskSpec) -> Path:
    """Where this task's run directory lives on its node: stable across attempts when it has a work_dir."""
    if not spec.work_dir:
        return Path(tempfile.mkdtemp(prefix="hwprof-fleet-"))
    out = Path(tempfile.gettempdir()) / TASKS_DIR / spec.work_dir
    out.mkdir(parents=True, exist_ok=True)
    return out


def earlier_attempt(out: Path) -> Path | None:
    """The run directory a dead attempt of this task left in `out` (None: this is the first attempt)."""
    runs = sorted(d for d in out.iterdir() if d.is_dir() and (d / "run.json").exists()) if out.exists() else []
    return runs[-1] if runs else None


def device_identity(kind: str, logical: str = "") -> tuple[str, str, str]:
    """(host, device_uuid, device name) of the device this task measures: NVML's UUID on a GPU, the CPU
    model and host name on a CPU (with the logical node's name, so logical nodes of one machine stay
    apart). Stable across Ray restarts, so a resumed fleet run finds each device's rows."""
    import torch
    from hwprof.measuring.cpu import cpu_info
    host = platform.node()
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        return host, f"GPU-{props.uuid}", props.name           # torch's uuid is NVML's without the GPU- prefix
    model = cpu_info().model
    return host, f"cpu:{model}@{host}" + (f"#{logical}" if logical else ""), model


def _rows_of(run_dir: Path) -> list[dict]:
    """The rows a run directory holds that pass a resume's checks, as records."""
    from hwprof.running.resume import verify_results
    from hwprof.running.rundir import read_run_json
    try:
        ids = set(read_run_json(run_dir)["suite"]["config_ids"])
        done, _ = verify_results(run_dir / "results.csv", ids)
    except (BadInput, KeyError, TypeError, OSError):
        return []
    return [row.as_dict() for row in done.values()]


def run_task(spec: TaskSpec) -> Iterator[tuple[str, object]]:
    if spec.kind == "cpu":
        # recent Ray no longer hides GPUs from tasks that asked for none; a CPU task must not touch them
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from hwprof.running.runner import Listener, execute
    from hwprof.running.session import RunOptions
    host, uuid, name = device_identity(spec.kind, spec.logical)
    prior = [r for r in spec.prior_rows if r.get("device_uuid") == uuid]
    yield "node", {"host": host, "node_id": spec.node_id, "device_uuid": uuid, "device_name": name, "key": spec.key}
    items: queue.Queue = queue.Queue()

    @contextmanager
    def sink(total: int, done: int):
        yield Listener(row=lambda row: items.put(("row", row.as_dict())))

    def work():
        try:
            out = task_out_dir(spec)
            before = earlier_attempt(out)
            opts = RunOptions(suite=spec.suite_source, suite_data=spec.suite_data, out_dir=out, resume=before,
                              device="cuda:0" if spec.kind == "cuda" else "cpu", prior_rows=prior,
                              command=["hwprof fleet task", spec.key], **spec.run_kwargs)
            if before is not None:           # rows the dead attempt wrote but may not have delivered
                sent = {r["config_id"] for r in prior}
                for rec in _rows_of(before):
                    if rec["config_id"] not in sent:
                        items.put(("row", rec))
            try:
                result = execute(opts, progress=sink, notify=lambda text: items.put(("warning", text)))
            except BadInput as e:            # the earlier attempt's directory cannot be resumed: start afresh
                if before is None:
                    raise
                items.put(("warning", f"the earlier attempt's run cannot be resumed ({e}); measuring afresh"))
                opts.resume = None
                result = execute(opts, progress=sink, notify=lambda text: items.put(("warning", text)))
            items.put(("end", result.meta))
            if spec.work_dir:                # done: nothing left to resume
                shutil.rmtree(out, ignore_errors=True)
        except BaseException as e:            # reported to the driver, which turns the rest into error rows
            items.put(("error", f"{type(e).__name__}: {e}"))
        finally:
            items.put(_DONE)

    threading.Thread(target=work, daemon=True).start()
    rows = 0
    while (item := items.get()) is not _DONE:
        if item[0] == "row":
            if spec.fail_after_rows is not None and rows >= spec.fail_after_rows:
                # A crash a moment after the last row went out. Ray reports a yielded item to the driver
                # asynchronously, and a block's rows come together: exiting at once could lose the rows just
                # sent too, which is a different (and racy) fault from the one this injects.
                time.sleep(FLUSH_BEFORE_CRASH_S)
                os._exit(17)
            rows += 1
        yield item
