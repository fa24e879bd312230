"""Run directories: unique creation, atomic writes, reading back (with schema checks)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from hwprof.errors import BadInput, OutputError
from hwprof.running.results import SCHEMA_VERSION


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target."""
    atomic_write_together({path: data})


def atomic_write_together(files: dict[Path, str | bytes]) -> None:
    """Files that go together (forecast.csv and .json) written whole or not at all: every one to a temp file
    beside it and fsynced first, then all renamed into place; a failure before the renames leaves the old
    ones. A disk that refuses is OutputError naming the file."""
    staged: list[tuple[str, Path]] = []
    path = None
    mode = 0o666 & ~_umask()        # a plain file's: mkstemp's 0600 would make run.json unreadable to the group
    try:
        for path, data in files.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            os.chmod(tmp, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as e:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError):
            raise OutputError(path, e) from None
        raise


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


# A run writes a few MiB at most (the quick suite's rounds.jsonl ~0.5 MiB, its report's plots ~1 MiB): less free
# space than this and it would fill the disk mid-run, so it is refused before anything is measured.
MIN_FREE_BYTES = 32 * 2**20


def check_free_space(directory: Path, need: int = MIN_FREE_BYTES) -> None:
    """BadInput when the filesystem holding `directory` has less than `need` bytes free."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return                      # cannot tell: the writes themselves will say
    if free < need:
        raise BadInput(f"{directory}: {free / 2**20:.1f} MiB free on its filesystem; a run needs "
                       f"{need / 2**20:.0f} MiB at least for its journal, results and report")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:40] or "suite"


def create_run_dir(out_dir: Path, suite_name: str, device: str, files: dict[str, str] | None = None) -> Path:
    """A fresh directory holding `files` (name -> text) from its first moment: they are written and fsynced in
    a hidden temporary directory beside it, which is then renamed into place (a rename is atomic), so a run
    directory is never seen half made and `--resume` accepts it whenever it exists. Two runs started at
    once never share one (the name has a random suffix; a rename onto an existing name fails)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"output directory {out_dir}: cannot create ({e.strerror})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BadInput(f"output directory {out_dir}: not writable")
    check_free_space(out_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(100):
        path = out_dir / f"{stamp}-{_slug(suite_name)}-{_slug(device.replace(':', ''))}-{secrets.token_hex(2)}"
        if path.exists():
            continue
        tmp = out_dir / f".{path.name}.making"
        try:
            tmp.mkdir()
            for name, text in (files or {}).items():
                with open(tmp / name, "w") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
            os.rename(tmp, path)
        except FileExistsError:
            continue
        except OSError as e:
            _remove(tmp)
            raise BadInput(f"output directory {out_dir}: cannot write a run directory there ({e.strerror})") from None
        return path
    raise RuntimeError(f"could not create a unique run directory under {out_dir}")


def _remove(tmp: Path) -> None:
    for p in tmp.glob("*"):
        try:
            p.unlink()
        except OSError:
            pass
    try:
        tmp.rmdir()
    except OSError:
        pass


class RunLock:
    """An exclusive lock on a run directory while a process measures into it (`.lock`, flock): a resume of a
    run that is still going is refused instead of two processes appending to one table."""

    def __init__(self, run_dir: Path):
        self.fh = None
        try:
            import fcntl
            self.fh = open(Path(run_dir) / ".lock", "a+")
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except BlockingIOError:
            raise BadInput(f"{run_dir}: another hwprof process is measuring into it; resume it once that one "
                           "has ended") from None
        except OSError:
            self.fh = None             # an unwritable directory: the run's own writes will say so

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def read_run_json(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: not a directory")
    path = run_dir / "run.json"
    if not path.exists() or not (run_dir / "results.csv").exists():
        raise BadInput(f"{run_dir}: not a hwprof run directory (needs run.json and results.csv)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("tool") != "hwprof":
        raise BadInput(f"{path}: not written by hwprof")
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BadInput(f"{run_dir}: written with results schema {version!r}; this hwprof reads up to "
                       f"{SCHEMA_VERSION} - upgrade hwprof to read it")
    return meta
