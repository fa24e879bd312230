import json
import threading

import pytest

from hwprof.errors import BadInput
from hwprof.running.results import SCHEMA_VERSION
from hwprof.running.rundir import atomic_write_text, create_run_dir, read_run_json, write_json


def test_run_dirs_are_unique_even_when_created_at_once(tmp_path):
    made = []
    threads = [threading.Thread(target=lambda: made.append(create_run_dir(tmp_path, "quick", "cuda:0")))
               for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 16 and all(p.is_dir() for p in made)
    assert all("quick" in p.name and "cuda0" in p.name for p in made)


def test_unwritable_output_directory_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BadInput, match="output directory"):
        create_run_dir(blocker / "sub", "s", "cpu")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two" and [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def _run(tmp_path, meta):
    (tmp_path / "results.csv").write_text("config_id\n")
    write_json(tmp_path / "run.json", meta)
    return tmp_path


def test_read_run_json_checks_tool_and_schema(tmp_path):
    good = _run(tmp_path, {"tool": "hwprof", "schema_version": SCHEMA_VERSION})
    assert read_run_json(good)["tool"] == "hwprof"
    _run(tmp_path, {"tool": "other", "schema_version": 1})
    with pytest.raises(BadInput, match="not written by hwprof"):
        read_run_json(tmp_path)
    _run(tmp_path, {"tool": "hwprof", "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(BadInput, match="upgrade hwprof"):
        read_run_json(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(BadInput, match="unreadable"):
        read_run_json(tmp_path)
    with pytest.raises(BadInput, match="not a directory"):
        read_run_json(tmp_path / "nope")
    assert json.loads(json.dumps({"ok": 1}))


def test_an_atomically_written_file_has_the_permissions_of_a_plain_one(tmp_path):
    import os
    import stat
    from hwprof.running.rundir import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "run.json", "{}")
        (tmp_path / "plain").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "run.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644   # not mkstemp's 0600
