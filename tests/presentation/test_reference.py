"""The manual is checked like code: every column, flag, run.json key and option has a description made from
the code, every option the README or the manual names exists, the manual builds with `mkdocs build --strict`,
and the commands of its getting-started page run (on a tiny suite)."""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hwprof.presentation import reference

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("name", ["results_columns", "models_columns", "breakdown_columns", "flags",
                                  "run_json_keys"])
def test_every_column_flag_and_run_json_key_has_a_description(name):
    entries = getattr(reference, name)()
    assert entries and [n for n, doc in entries if not doc.strip()] == []


def test_the_columns_described_are_the_columns_written():
    from hwprof.analysis.breakdown import BREAKDOWN_COLUMNS
    from hwprof.analysis.models import COLUMNS
    from hwprof.running.results import ALL_COLUMNS as RESULT_COLUMNS
    assert [n for n, _ in reference.results_columns()] == list(RESULT_COLUMNS)
    assert [n for n, _ in reference.models_columns()] == list(COLUMNS)
    assert [n for n, _ in reference.breakdown_columns()] == list(BREAKDOWN_COLUMNS)


def test_every_option_of_every_command_has_a_help_text():
    assert reference.undocumented_options() == []
    text = reference.cli_reference()
    assert "### hwprof run" in text and "`--resume RUN_DIR`" in text


def test_a_field_comment_continues_on_comment_lines_in_its_column():
    from dataclasses import dataclass

    @dataclass
    class Two:
        a: int = 0          # first
                            # and its continuation
        b: int = 1          # second
        c: int = 2
    assert reference.field_docs(Two) == {"a": "first and its continuation", "b": "second", "c": ""}


def test_every_reference_a_page_asks_for_exists_and_an_unknown_one_fails():
    asked = {m for p in PAGES for m in re.findall(r"<!-- reference: ([a-z-]+) -->", p.read_text())}
    assert asked == set(reference.REFERENCE)
    with pytest.raises(KeyError):
        reference.expand("<!-- reference: nothing -->\n")


def test_the_tables_in_the_pages_are_the_ones_the_code_makes_now():
    # the pages hold the generated tables so they read whole on GitHub; after a change to a column, a flag,
    # a run.json key or an option: python -m hwprof.presentation.reference docs
    stale = [p.relative_to(ROOT).as_posix() for p in PAGES if reference.expand(p.read_text()) != p.read_text()]
    assert stale == []


def test_expanding_a_page_twice_changes_nothing_and_leaves_the_rest_of_it_alone():
    page = "# A\n\n<!-- reference: flags -->\n\ntext between\n\n<!-- reference: run-json -->\n| old | table |\n" \
           "<!-- /reference -->\ntail\n"
    once = reference.expand(page)
    assert reference.expand(once) == once and "text between" in once and once.endswith("tail\n")
    assert "| old | table |" not in once and once.count("<!-- /reference -->") == 2 and "`reference-impl`" in once


def test_writing_the_tables_into_a_folder_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys):
    assert reference.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a directory" in err and len(err.splitlines()) == 1
    page = tmp_path / "p.md"
    page.write_text("<!-- reference: flags -->\n")
    assert reference.main([str(tmp_path)]) == 0 and "`reference-impl`" in page.read_text()


def _options_named(text: str) -> set[str]:
    """`--flag` names in code spans and code blocks of a page."""
    code = re.findall(r"```.*?```", text, flags=re.S) + re.findall(r"`[^`\n]+`", text)
    return {m for span in code for m in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", span)}


def test_every_option_the_readme_and_the_manual_name_exists():
    known = {s for p in reference.commands().values() for a in p._actions for s in a.option_strings}
    # options of other tools quoted in the pages (pip, pytest, mkdocs, the benchmark scripts)
    others = {"--strict", "--report", "--fresh", "--phases", "--first-calls", "--slow-call", "--models",
              "--precisions", "--skip-validate", "--skip-depth", "--out", "--suite", "--device", "--head"}
    unknown = {p.relative_to(ROOT).as_posix(): sorted(_options_named(p.read_text()) - known - others)
               for p in PAGES}
    assert {p: o for p, o in unknown.items() if o} == {}


def test_a_real_run_writes_only_described_run_json_keys_and_flags(tiny_suite, fast_options):
    import hwprof
    from hwprof.running.results import FLAGS
    from hwprof.running.run_json import KEYS
    # bf16 math attention on CPU is always flagged (upcast-fp32), so the check of the flags is never vacuous
    tiny_suite.write_text(tiny_suite.read_text() + '\n[[attention]]\nshapes = [[1, 2, 32, 32, 16]]\n'
                          'precisions = ["bf16"]\nmasks = ["causal"]\nbackends = ["math"]\n')
    df = hwprof.run_suite(str(tiny_suite), **fast_options)
    meta = json.loads((Path(df.attrs["run_dir"]) / "run.json").read_text())
    assert set(meta) - set(KEYS) == set()
    written = {f for cell in df["flags"].dropna() for f in str(cell).split(",") if f}
    assert "upcast-fp32" in written and written - set(FLAGS) == set()


def test_the_manual_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    # the console script, as the README has it run: its folder comes first on sys.path, where `python -m`
    # puts the working directory, and that once hid the package from the API page (docs/_hooks.py)
    script = Path(sys.executable).parent / "mkdocs"
    mkdocs = [str(script)] if script.is_file() else [sys.executable, "-m", "mkdocs"]
    done = subprocess.run([*mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    page = (tmp_path / "site" / "reference" / "results" / "index.html").read_text()
    assert "time_s_ci_low" in page and "reference-impl" in page        # the generated tables are in it
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "run_suite" in api and "RunOptions" in api


MODEL_SUITE = ('name = "tiny-model"\nbudget_s = 0.02\nci_target = 0.5\nwarmup_s = 0.0\nmin_window_s = 0.0\n'
               'rounds = 3\nround_s = 0.0\n[[model]]\npreset = "tiny"\nprecisions = ["fp32"]\nphases = ["decode"]\n')
FAST = ["--energy", "estimate", "--quiet-check-s", "0", "--no-history", "--no-roofs"]


def _on_a_tiny_suite(command: str, kernels: Path, model: Path) -> str:
    """A page's command with its suite swapped for a tiny one and the run kept to seconds."""
    words = shlex.split(command, posix=False)
    if words[:2] not in (["hwprof", "run"], ["hwprof", "fleet"]):
        return command
    if "--suite" in words:
        i = words.index("--suite")
        words[i + 1] = str(model if words[i + 1].startswith("model:") else kernels)
    else:
        words += ["--suite", str(kernels)]
    return " ".join(words + FAST)


def getting_started_commands() -> list[str]:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("python3 -m pip"):          # the install: what follows it is run
                line = line.partition("&&")[2].strip()
            if line:
                out.append(line)
    return out


def test_the_getting_started_commands_run(tmp_path, tiny_suite):
    commands = getting_started_commands()
    assert any(c.startswith("hwprof run") for c in commands) and any("forecast" in c for c in commands)
    model = tmp_path / "model.toml"
    model.write_text(MODEL_SUITE)
    script = ["set -e", f'hwprof() {{ "{sys.executable}" -m hwprof "$@"; }}']
    # the presets all become the tiny suite: a command that becomes one already run is run once
    script += list(dict.fromkeys(_on_a_tiny_suite(c, tiny_suite, model) for c in commands))
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    runs = sorted(p for p in (tmp_path / "reports").iterdir() if p.is_dir())
    assert len(runs) >= 3 and any((r / "models.csv").exists() for r in runs)
