"""What hwprof keeps about a machine between runs, one JSON file per kind and machine fingerprint, under the
user's cache directory (HWPROF_CACHE_DIR overrides it): its measured roofs, its references' history.

A fingerprint covers what a kernel's speed depends on besides the host's mood: the device model and its
features, the threads, the torch build. An unreadable or unwritable cache costs a measurement, nothing else.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

from hwprof.measuring.cpu import INTERESTING_FLAGS
from hwprof.measuring.devices import DeviceInfo


def machine_key(info: DeviceInfo) -> dict:
    """What a kernel's speed on this device depends on: its model (and features), the threads, the torch build."""
    key = {"kind": info.kind, "name": info.name, "torch": torch.__version__}
    if info.kind == "cuda":
        key |= {"capability": info.gpu.get("capability"), "uuid": info.gpu.get("uuid"),
                "cuda": info.gpu.get("cuda")}
    elif info.cpu is not None:
        key |= {"microarch": info.cpu.microarch, "flags": [f for f in info.cpu.flags if f in INTERESTING_FLAGS],
                "logical_cpus": info.cpu.logical_cpus, "usable_cpus": info.cpu.usable_cpus,
                "threads": torch.get_num_threads()}
    return key


def fingerprint(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    override = os.environ.get("HWPROF_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_cache_dir("hwprof"))


def _path(kind: str, fp: str) -> Path:
    return cache_dir() / kind / f"{fp}.json"


def describe_path(kind: str, fp: str) -> str:
    """Where a cached document lives, for messages."""
    return str(_path(kind, fp))


def read_cached(kind: str, fp: str) -> dict | None:
    """The cached document, or None (none yet, or a file that does not parse)."""
    try:
        data = json.loads(_path(kind, fp).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_cached(kind: str, fp: str, data: dict) -> None:
    """Replace the cached document atomically (a reader never sees half a file)."""
    path = _path(kind, fp)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass


@contextmanager
def _locked(kind: str, fp: str) -> Iterator[None]:
    """An exclusive lock on the document (a lock file beside it), where the platform has flock; otherwise none."""
    try:
        import fcntl
        path = _path(kind, fp).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        fh.close()                           # closing releases the lock


def update_cached(kind: str, fp: str, change: Callable[[dict | None], dict]) -> None:
    """Read the cached document, change it and write it back under a lock, so that two processes updating
    it at once (fleet nodes on one host) both land instead of the later write dropping the earlier one."""
    with _locked(kind, fp):
        write_cached(kind, fp, change(read_cached(kind, fp)))
