"""MkDocs hook: the reference tables the pages ask for (`<!-- reference: NAME -->`), made from the code at
build time by hwprof.presentation.reference, so the manual cannot drift from what hwprof writes."""
from hwprof.presentation.reference import expand


def on_page_markdown(markdown, page, config, files):
    return expand(markdown)
