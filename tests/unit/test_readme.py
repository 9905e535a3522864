"""The Python examples of the README and of the docs (doc/*.rst) run, so they cannot rot."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.rst"
DOCS = ROOT / "doc"


def documents() -> list[Path]:
    """The README, then every page of the docs, in name order."""
    return [README, *sorted(DOCS.glob("*.rst"))]


def python_blocks(document: Path) -> list[tuple[int, str]]:
    """Each ``.. code-block:: python`` block of a document, in order, with its first line."""
    text = document.read_text()
    return [(text.count("\n", 0, match.start(1)) + 1, textwrap.dedent(match.group(1)))
            for match in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)]


def test_the_documentation_has_examples_and_they_run() -> None:
    ran = 0
    for document in documents():
        for line, block in python_blocks(document):
            # Padded so that a traceback names the block's own line in the document.
            exec(compile("\n" * (line - 1) + block, str(document), "exec"), {})
            ran += 1
    assert ran
