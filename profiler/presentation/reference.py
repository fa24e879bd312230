"""The manual's reference, made from the code so it cannot drift: the results.csv, models.csv and
model_breakdown.csv columns from the comment beside each field, the flags and run.json keys from their
tables, the CLI from its argument parser. The manual's build (docs/_hooks.py) puts these tables into its
pages; tests hold every column, flag, key and option to a description.
"""
from __future__ import annotations

import argparse
import ast
import re
import inspect
import io
import textwrap
import tokenize
from dataclasses import fields


def field_docs(cls) -> dict[str, str]:
    """A dataclass's fields with the comment beside each (continued on comment-only lines that start in the
    same column), from its source; a field without one maps to ""."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, tuple[int, str]] = {}        # line -> (column, text)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string.lstrip("#").strip())
    lines = source.splitlines()
    docs: dict[str, str] = {}
    body = ast.parse(source).body[0].body
    for node in body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        line = node.end_lineno
        col, text = comments.get(line, (None, ""))
        parts = [text] if text else []
        nxt = line + 1
        while col is not None and nxt in comments and comments[nxt][0] == col and \
                lines[nxt - 1][:col].strip() == "":
            parts.append(comments[nxt][1])
            nxt += 1
        docs[node.target.id] = " ".join(parts)
    return {f.name: docs.get(f.name, "") for f in fields(cls)}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    out = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    out += [f"| `{_cell(name)}` | {_cell(doc)} |" for name, doc in rows]
    return "\n".join(out) + "\n"


def results_columns() -> list[tuple[str, str]]:
    from hwprof.running.results import Row, column_name
    return [(column_name(name), doc) for name, doc in field_docs(Row).items()]


def models_columns() -> list[tuple[str, str]]:
    from hwprof.analysis.models import ModelRow
    return [("pass" if name == "pass_" else name, doc) for name, doc in field_docs(ModelRow).items()]


def breakdown_columns() -> list[tuple[str, str]]:
    from hwprof.analysis.breakdown import BREAKDOWN_DOCS
    return list(BREAKDOWN_DOCS.items())


def flags() -> list[tuple[str, str]]:
    from hwprof.running.results import FLAGS
    return list(FLAGS.items())


def run_json_keys() -> list[tuple[str, str]]:
    from hwprof.running.run_json import KEYS
    return list(KEYS.items())


def _option_names(action: argparse.Action) -> str:
    names = ", ".join(action.option_strings) if action.option_strings else action.dest.upper()
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        names += " {" + ",".join(map(str, action.choices)) + "}"
    elif action.option_strings and action.nargs != 0:
        names += " " + (action.metavar or action.dest.upper())
    return names


def _options(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str]]:
    return [(a, _option_names(a)) for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def commands(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    from hwprof.presentation.cli import build_parser
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def undocumented_options() -> list[str]:
    """`hwprof VERB --option` for every option without a help text (a test keeps this empty)."""
    return [f"hwprof {verb} {names}" for verb, p in commands().items() for a, names in _options(p) if not a.help]


def cli_reference() -> str:
    from hwprof.presentation.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    out = []
    for verb, p in commands(parser).items():
        out.append(f"### hwprof {verb}\n\n{helps.get(verb, '')}\n\n```\n{p.format_usage().strip()}\n```\n")
        rows = []
        for a, names in _options(p):
            said = "default" in (a.help or "")
            default = "" if said or a.default in (None, False, argparse.SUPPRESS) or not a.option_strings else \
                f" (default {a.default})"
            rows.append(f"| `{_cell(names)}` | {_cell((a.help or '') + default)} |")
        out.append("| option | what it does |\n|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(out)


REFERENCE = {
    "results-columns": lambda: table(results_columns(), ("column", "meaning")),
    "models-columns": lambda: table(models_columns(), ("column", "meaning")),
    "breakdown-columns": lambda: table(breakdown_columns(), ("column", "meaning")),
    "flags": lambda: table(flags(), ("flag", "meaning")),
    "run-json": lambda: table(run_json_keys(), ("key", "what it holds")),
    "cli": cli_reference,
}


# A page holds each generated table between these markers, so that it reads whole where Markdown is shown
# as it is (on GitHub) and a test can tell when the code has moved on from it.
_BLOCK = re.compile(r"<!-- reference: ([a-z-]+) -->\n(?:(?:(?!<!-- reference:).)*?<!-- /reference -->\n)?", re.S)


def expand(markdown: str) -> str:
    """The page with every `<!-- reference: NAME -->` block (the marker, and the table an earlier expansion
    put after it up to `<!-- /reference -->`) made again from the code (KeyError: an unknown NAME)."""
    return _BLOCK.sub(lambda m: f"<!-- reference: {m.group(1)} -->\n{REFERENCE[m.group(1)]()}\n"
                                f"<!-- /reference -->\n", markdown)


def main(argv: list[str] | None = None) -> int:
    """`python -m hwprof.presentation.reference DOCS_DIR`: write the generated tables into the pages."""
    import sys
    from pathlib import Path
    docs = Path((argv if argv is not None else sys.argv[1:] or ["docs"])[0])
    if not docs.is_dir():
        print(f"{docs}: not a directory of Markdown pages (the manual is docs/)", file=sys.stderr)
        return 2
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text()
        new = expand(text)
        if new != text:
            page.write_text(new)
            print(f"updated {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
