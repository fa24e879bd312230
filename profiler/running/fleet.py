"""Fleet runs: one suite on every GPU (or every node's CPU) of a Ray cluster, into one run directory.

Ray is the engine for this shape of work, a farm of independent tasks pinned to devices: one task per GPU
(num_gpus=1, which pins CUDA_VISIBLE_DEVICES) or per node for CPUs (the task reserves all of the node's
CPUs: CPU timing and RAPL are per socket, and a neighbour would corrupt both). Each task runs the ordinary
runner (running.fleet_task) and streams its rows back as they finish; the driver appends them, fsynced, to
one results.csv with host, node_id and device_uuid. A task that dies keeps the rows it sent; it is retried
for the rest, and what still fails becomes error rows with the reason; resume re-runs only the missing
(device, configuration) pairs.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import torch

from hwprof.errors import BadInput
from hwprof.running.fleet_task import TaskSpec, run_task, work_dir_name
from hwprof.running.results import SCHEMA_VERSION, ResultsWriter, Row, drop_rows, read_results
from hwprof.running.rows import base_row
from hwprof.running.interrupts import Interrupted
from hwprof.running.rundir import create_run_dir, read_run_json, write_json
from hwprof.running.suite import load_suite, suite_from_data
from hwprof.version import __version__

INSTALL = "pip install 'hwprof[fleet]' (in a checkout: pip install -e '.[fleet]')"
ENDED = "fleet task ended before this configuration was measured"


@dataclass
class FleetOptions:
    suite: str | None = None
    address: str = "auto"                  # auto | local | HOST:PORT of a running cluster
    local_nodes: int = 0                   # with a local instance: this many logical nodes (custom resources)
    per: str | None = None                 # gpu | node (default: gpu where the cluster has GPUs, else node)
    out_dir: Path = Path("reports")
    resume: Path | None = None
    retries: int = 1                       # a task that dies is run again this many times for what it had left
    run_kwargs: dict = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    fail_after_rows: dict[str, int] = field(default_factory=dict)    # fault injection (tests): task key -> rows


@dataclass
class Placement:
    key: str
    node_id: str
    kind: str
    options: dict                          # Ray task options: resources and scheduling
    logical: str = ""


def import_ray():
    try:
        import ray
    except ImportError:
        raise BadInput(f"fleet runs need Ray, which is not installed: {INSTALL}") from None
    return ray


def connect(ray, address: str, local_nodes: int) -> str:
    """Join the cluster at `address`, or start one on this machine only ("local"); a driver already
    connected keeps its connection."""
    if local_nodes and address != "local":
        raise BadInput("logical nodes are for a local instance: use the local address with them")
    if ray.is_initialized():
        return "already connected"
    resources = {f"hwprof_node_{i}": 1 for i in range(local_nodes)}
    try:
        if address == "local":
            ray.init(address="local", resources=resources, include_dashboard=False, log_to_driver=False,
                     num_cpus=psutil.cpu_count() or 1)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise BadInput(f"cannot reach a Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
    return address


def placements(ray, per: str | None, local_nodes: int) -> list[Placement]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if local_nodes:
        # logical nodes share this machine: each reserves all its CPUs, so they take turns, never overlap
        node = nodes[0]
        cpus = node["Resources"].get("CPU", 1)
        return [Placement(f"node local-{i}", f"{node['NodeID']}/local-{i}", "cpu",
                          {"num_cpus": cpus, "resources": {f"hwprof_node_{i}": 1}}, f"local-{i}")
                for i in range(local_nodes)]
    gpus = sum(int(n["Resources"].get("GPU", 0)) for n in nodes)
    per = per or ("gpu" if gpus else "node")
    out = []
    for n in nodes:
        pin = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        if per == "node":
            out.append(Placement(f"node {n['NodeManagerAddress']}", n["NodeID"], "cpu",
                                 {"num_cpus": n["Resources"].get("CPU", 1), "scheduling_strategy": pin}))
        else:
            out += [Placement(f"gpu {g} of {n['NodeManagerAddress']}", n["NodeID"], "cuda",
                              {"num_gpus": 1, "num_cpus": 1, "scheduling_strategy": pin})
                    for g in range(int(n["Resources"].get("GPU", 0)))]
    if not out:
        raise BadInput(f"the cluster has no {'GPU' if per == 'gpu' else 'node'} to run on")
    return out


def _error_row(cid: str, spec_of: dict, ident: dict, reason: str) -> Row:
    row = base_row(spec_of[cid], torch.device(ident.get("kind", "cpu")), "error", reason)
    row.host, row.node_id, row.device_uuid = ident.get("host", ""), ident.get("node_id", ""), ident.get("device_uuid", "")
    return row


def run_fleet(opts: FleetOptions, notify: Callable[[str], None] = lambda text: None):
    """Run the suite on every placement; returns (run_dir, results DataFrame, run.json dict)."""
    ray = import_ray()
    if opts.per not in (None, "gpu", "node"):
        raise BadInput(f"per {opts.per!r}: use gpu or node")
    stored = read_run_json(opts.resume) if opts.resume else None
    if stored is not None and "fleet" not in stored:
        raise BadInput(f"resume {opts.resume}: not a fleet run")
    suite = (suite_from_data(stored["suite"]["raw"], stored["suite"]["source"]) if stored
             else load_suite("quick" if opts.suite is None else opts.suite))
    address = connect(ray, opts.address, opts.local_nodes)
    places = placements(ray, opts.per, opts.local_nodes)
    if stored is not None:
        run_dir, meta = Path(opts.resume), stored
        _drop_ended_rows(run_dir / "results.csv")
        meta.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    else:
        run_dir = create_run_dir(opts.out_dir, suite.name, "fleet")
        meta = {"tool": "hwprof", "version": __version__, "schema_version": SCHEMA_VERSION, "device": "fleet",
                "command": opts.command, "suite": {**suite.resolved(), "raw": suite.raw},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "nodes": {}}
    meta["fleet"] = {"address": address, "per": "gpu" if places[0].kind == "cuda" else "node",
                     "local_nodes": opts.local_nodes, "tasks": [p.key for p in places], "retries": opts.retries}
    meta["status"] = "running"
    write_json(run_dir / "run.json", meta)
    prior = read_results(run_dir / "results.csv").to_dict("records") if (run_dir / "results.csv").exists() else []
    remote = ray.remote(max_retries=0)(run_task)
    items: queue.Queue = queue.Queue()

    def drive(p: Placement) -> None:
        rows = list(prior)                   # the task keeps those of its own device (by device_uuid)
        failure = uuid = ""
        for _attempt in range(opts.retries + 1):
            spec = TaskSpec(p.key, p.node_id, p.kind, suite.source, suite.raw, dict(opts.run_kwargs), list(rows),
                            opts.fail_after_rows.get(p.key), p.logical, work_dir_name(run_dir.name, p.key))
            try:
                for ref in remote.options(**p.options).remote(spec):
                    kind, payload = ray.get(ref)
                    if kind == "node":
                        uuid = payload["device_uuid"]
                    if kind == "row":                # a retry keeps what this attempt measured
                        rows.append({**payload, "device_uuid": uuid})
                    if kind == "error":
                        failure = payload
                        break
                    items.put((p, kind, payload))
                else:
                    return items.put((p, "done", None))
            except Exception as e:                           # the worker or its node died
                failure = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            notify(f"fleet task {p.key} failed ({failure}); {'retrying' if _attempt < opts.retries else 'giving up'}")
        items.put((p, "failed", failure))

    threads = [threading.Thread(target=drive, args=(p,), daemon=True) for p in places]
    for t in threads:
        t.start()
    writer = ResultsWriter(run_dir / "results.csv")
    status = "interrupted"
    ident: dict[str, dict] = {}
    written: dict[str, set] = {p.key: set() for p in places}
    try:
        while any(t.is_alive() for t in threads) or not items.empty():
            try:
                p, kind, payload = items.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "node":
                ident[p.key] = {**payload, "kind": p.kind, "node_id": p.node_id}
                meta["nodes"].setdefault(p.key, {}).update(payload)
                written[p.key] |= {r["config_id"] for r in prior if r.get("device_uuid") == payload["device_uuid"]}
            elif kind == "row":
                row = Row.from_record(payload)
                info = ident.get(p.key, {})
                row.host, row.node_id, row.device_uuid = info.get("host", ""), p.node_id, info.get("device_uuid", "")
                writer.append(row)
                written[p.key].add(row.config_id)
            elif kind == "warning":
                notify(f"{p.key}: {payload}")
            elif kind == "end":
                meta["nodes"].setdefault(p.key, {})["run"] = {k: payload.get(k) for k in (
                    "device_description", "threads", "torch", "energy", "policy", "roofs", "timer", "wall_s",
                    "measured_s", "quiet_checks", "contention", "machine_state", "idle_power_w")}
            elif kind == "failed":
                specs = {s.config_id: s for s in suite.for_device(p.kind).specs}
                info = ident.get(p.key, {"kind": p.kind, "node_id": p.node_id})
                for cid in [c for c in specs if c not in written[p.key]]:
                    writer.append(_error_row(cid, specs, info, f"{ENDED} ({payload})"))
                meta["nodes"].setdefault(p.key, {})["failed"] = payload
        status = "complete"
    except KeyboardInterrupt:
        raise Interrupted(run_dir, "fleet") from None
    finally:
        writer.close()
        meta["status"] = status
        meta["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json(run_dir / "run.json", meta)
    return run_dir, read_results(run_dir / "results.csv"), meta


def _drop_ended_rows(path: Path) -> None:
    """Before a resume: the error rows a dead task left are to be measured now, so they go."""
    if path.exists():
        drop_rows(path, lambda r: r["status"] == "error" and r["reason"].startswith(ENDED))
