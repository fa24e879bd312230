"""Strings from data (suite names, reasons, paths, process names, peak sources) shown as data.

A terminal interprets control characters (an ESC sequence recolours or moves the cursor, a newline splits a
heading of report.md) and rich interprets `[...]` as markup (it swallowed `[quant]` in `pip install
'hwprof[quant]'`). Everything that came from data goes through `visible` (control characters written as
escapes) and, for rich, into a `Text`, which rich never parses as markup.
"""
from __future__ import annotations

import unicodedata

from rich.text import Text

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def visible(value) -> str:
    """`value` as a string whose control characters (C0, C1, DEL, and format characters such as
    bidirectional overrides) are written out as escapes instead of being sent."""
    out = []
    for ch in str(value):
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf") and ch != "\u200d":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def data(value, style: str = "") -> Text:
    """A rich cell or line that shows `value` literally (no markup, control characters escaped)."""
    return Text(visible(value), style=style)


def line(*parts, style: str = "") -> Text:
    """A line joined from literal data parts and (style, text) pairs the caller wrote."""
    out = Text(style=style)
    for p in parts:
        if isinstance(p, tuple):
            out.append(p[1], style=p[0])
        else:
            out.append(visible(p))
    return out
