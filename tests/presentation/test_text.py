"""Data is printed as data: rich markup in a suite name or a reason is shown, not interpreted; control
characters are shown as escapes, not sent; the run table stays one line a row in a 100-column terminal."""
import io

import pandas as pd
from rich.console import Console

from hwprof.presentation.console import print_results, print_warning
from hwprof.presentation.report import to_markdown
from hwprof.presentation.text import visible
from hwprof.running.results import ALL_COLUMNS, typed

HOSTILE_NAME = "demo [bold]b[/bold] [quant] \x1b[31mred\nsecond line\u202e"
QUANT_REASON = "quantization schemes need torchao, which is not installed: pip install 'hwprof[quant]' (in a " \
               "checkout: pip install -e '.[quant]')"


def _table() -> tuple[pd.DataFrame, dict]:
    rows = []
    for cid, status, reason, flags in [
            ("matmul/512x1024x1024/fp32/dense/fwd", "ok", "", "noisy"),
            ("matmul/512x1024x1024/w8a16/dense/fwd", "unsupported", QUANT_REASON, ""),
            ("attention/1x4x256x256x64/bf16/causal/flash/fwd", "ok", "", "noisy,few-rounds,reference-impl"),
            ("matmul/512x512x512/fp32/unstructured:0.1/fwd", "ok", "", "noisy,bimodal,reference-impl,estimate"),
            ("matmul/16x1024x1024/w4a16:g128/dense/fwd", "error", "RuntimeError: [red]boom[/red]\x1b]0;title\x07",
             "")]:
        r = dict.fromkeys(ALL_COLUMNS)
        r.update(config_id=cid, status=status, reason=reason, flags=flags, precision="fp32", kernel="matmul",
                 # the widest cells a quick run prints (bf16 on an AVX2 CPU: 25.2 ms, 1.34 GFLOP/s, 0.0107x)
                 time_s_median=0.0252 if status == "ok" else None,
                 logical_flops_per_s=1.34e9 if status == "ok" else None,
                 hef_time=0.0107 if status == "ok" else None, impl="", mfu=None, peak_source="",
                 doublings_time=0.0, rel_error=1e-7, sparsity="dense", density=1.0)
        rows.append(r)
    meta = {"suite": {"name": HOSTILE_NAME}, "device": "cpu", "energy": {"source": "none"}, "policy": {"rounds": 8}}
    return typed(pd.DataFrame(rows)), meta


def _render(width: int) -> str:
    buf = io.StringIO()
    df, meta = _table()
    print_results(df, meta, Console(file=buf, width=width, color_system=None, force_terminal=False))
    return buf.getvalue()


def test_visible_writes_control_characters_out():
    assert visible("a\nb\tc\x1b[31m\x07\u202e") == "a\\nb\\tc\\x1b[31m\\x07\\u202e"
    assert visible("[bold] café 1×2 µs") == "[bold] café 1×2 µs"


def test_markup_and_control_characters_in_names_and_reasons_are_shown_not_obeyed():
    out = _render(100)
    assert "[bold]b[/bold] [quant]" in out and "pip install 'hwprof[quant]'" in out and "'.[quant]'" in out
    assert "[red]boom[/red]" in out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out   # nothing reaches the terminal raw
    assert "\\x1b[31mred\\nsecond line" in out and "\\x1b]0;title\\x07" in out


def test_the_run_table_is_one_line_a_row_in_100_columns():
    lines = _render(100).splitlines()
    assert all(len(line) <= 100 for line in lines)
    for cid in ("matmul/512x1024x1024/fp32/dense/fwd", "attention/1x4x256x256x64/bf16/causal/flash/fwd",
                "matmul/16x1024x1024/w4a16:g128/dense/fwd"):
        assert any(cid in line for line in lines), cid                     # never folded
    reason = [line for line in lines if "torchao, which is not installed" in line]
    assert reason and reason[0].startswith("[1] ")                           # reasons are notes below the table
    assert any(line.rstrip().endswith("unsupported [1]") for line in lines)
    words = " ".join(lines).replace(",", " ").split()
    for flag in ("noisy", "few-rounds", "reference-impl", "bimodal", "estimate"):   # folded whole, never cropped
        assert flag in words, flag


def test_report_markdown_keeps_its_heading_on_one_line():
    df, meta = _table()
    md = to_markdown(df, meta, {})
    heading = md.splitlines()[0]
    assert heading.startswith("# hwprof report: demo [bold]b[/bold] [quant] \\x1b[31mred\\nsecond line")
    assert md.splitlines()[1] == ""


def test_a_warning_naming_processes_prints_their_names_as_they_are(capsys):
    print_warning("the machine is not quiet: other processes use 1.00 cores: [bold]evil[/bold] (pid 7)\x1b[2J")
    err = capsys.readouterr().err
    assert "[bold]evil[/bold]" in err and "\x1b[2J" not in err and "\\x1b[2J" in err
