"""MkDocs hooks: the reference tables the pages ask for (`<!-- reference: NAME -->`), made from the code at
build time by hwprof.presentation.reference, so the manual cannot drift from what hwprof writes; and the API
pages' package found as the package, not as the `hwprof` console script."""
import sys
from pathlib import Path

from hwprof.presentation.reference import expand


def on_startup(command, dirty):
    # Run as `mkdocs build`, the console script's folder is first on sys.path, and griffe (mkdocstrings) takes
    # the `hwprof` script in it for the hwprof package, so the API page finds none of its objects.
    sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "hwprof").is_file()]


def on_page_markdown(markdown, page, config, files):
    return expand(markdown)
