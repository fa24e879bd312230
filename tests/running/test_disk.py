"""The disk: an output that cannot be written is one line and exit 2, checked before measuring where it can
be; a disk that fills mid-run stops the run with what it measured kept and its directory resumable."""
import errno
import json
import shutil
import tempfile

import pytest

from hwprof.presentation.cli import main
from hwprof.running import journal as journal_mod
from hwprof.running import results as results_mod
from hwprof.running.results import read_results

FAST = ["--energy", "none", "--quiet", "--quiet-check-s", "0", "--no-report", "--no-history", "--no-roofs"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


class _Filling:
    """A file whose disk fills: writes fail with ENOSPC from the n-th on (the earlier ones land)."""

    def __init__(self, fh, n):
        self._fh, self._left = fh, n

    def write(self, data):
        self._left -= 1
        if self._left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)


def _fill_after(monkeypatch, module, n: int) -> None:
    """`module`'s appends (the journal's, results.csv's) go to a disk that fills at the n-th write."""
    def opener(path, mode="r", *args, **kwargs):
        fh = open(path, mode, *args, **kwargs)
        return _Filling(fh, n) if mode.startswith("a") else fh
    monkeypatch.setattr(module, "open", opener, raising=False)


def _run_dir(out):
    [d] = [p for p in out.iterdir() if not p.name.startswith(".")]
    return d


@pytest.mark.parametrize("where", ["journal", "results"])
def test_a_disk_that_fills_mid_run_stops_it_resumable_with_what_was_measured(tiny_suite, tmp_path, capsys,
                                                                              monkeypatch, where):
    out = tmp_path / "out"
    if where == "journal":        # the 12th of its 22 records: mid-block, cases built and rounds under way
        _fill_after(monkeypatch, journal_mod, 12)
    else:                         # the third row (the header was the first write)
        _fill_after(monkeypatch, results_mod, 4)
    assert main(["run", "--suite", str(tiny_suite), "--out", str(out), *FAST]) == 2
    err = _one_line(capsys)
    run_dir = _run_dir(out)
    assert "No space left on device" in err and f"--resume {run_dir}" in err and "once there is room" in err
    kept_rows = len(read_results(run_dir / "results.csv"))
    kept_records = len((run_dir / "rounds.jsonl").read_text().splitlines())
    assert (kept_rows, kept_records) > (0, 1) if where == "results" else kept_records > 1
    monkeypatch.undo()                                       # room again
    assert main(["run", "--resume", str(run_dir), *FAST]) == 0
    df = read_results(run_dir / "results.csv")
    ids = json.loads((run_dir / "run.json").read_text())["suite"]["config_ids"]
    assert sorted(df["config_id"]) == sorted(ids) and not df["config_id"].duplicated().any()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_an_output_directory_that_cannot_be_made_or_written_exits_2_before_measuring(tiny_suite, tmp_path, capsys,
                                                                                    monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["run", "--suite", str(tiny_suite), "--out", str(a_file / "out"), *FAST]) == 2
    assert "cannot create" in _one_line(capsys)
    monkeypatch.setattr("os.access", lambda path, mode: False)          # read-only, as root never sees it
    assert main(["run", "--suite", str(tiny_suite), "--out", str(tmp_path / "ro"), *FAST]) == 2
    assert "not writable" in _one_line(capsys)


def test_too_little_free_space_is_refused_before_measuring(tiny_suite, tmp_path, capsys, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=5 * 2**20))
    assert main(["run", "--suite", str(tiny_suite), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "5.0 MiB free" in _one_line(capsys)
    assert not any((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from tests.conftest import TINY_SUITE
    tmp = tmp_path_factory.mktemp("disk")
    (tmp / "tiny.toml").write_text(TINY_SUITE)
    # energy estimated, so forecast has a FLOP/J to start from; a report, so the directory is a whole run's
    assert main(["run", "--suite", str(tmp / "tiny.toml"), "--out", str(tmp / "out"), "--energy", "estimate",
                 "--quiet", "--quiet-check-s", "0"]) == 0
    return _run_dir(tmp / "out")


def _read_only(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr("pathlib.Path.mkdir", refuse)


@pytest.mark.parametrize("verb", ["report", "forecast", "compare"])
def test_report_forecast_and_compare_into_a_read_only_directory_exit_2(finished_run, capsys, monkeypatch, verb):
    argv = {"report": ["report", str(finished_run)], "forecast": ["forecast", str(finished_run)],
            "compare": ["compare", str(finished_run), str(finished_run), "--out", str(finished_run)]}[verb]
    before = sorted(p.name for p in finished_run.iterdir())
    _read_only(monkeypatch)
    assert main(argv) == 2
    assert "Read-only file system" in _one_line(capsys)
    assert sorted(p.name for p in finished_run.iterdir()) == before


def test_a_report_of_a_half_written_run_renders_what_is_there(finished_run, tmp_path, capsys):
    half = tmp_path / "half"
    shutil.copytree(finished_run, half)
    lines = (half / "results.csv").read_text().splitlines(keepends=True)
    (half / "results.csv").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])   # a torn last row
    meta = json.loads((half / "run.json").read_text())
    meta["status"] = "running"
    (half / "run.json").write_text(json.dumps(meta))
    shutil.rmtree(half / "plots", ignore_errors=True)
    assert main(["report", str(half)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (half / "report.md").stat().st_size > 0 and any((half / "plots").iterdir())
