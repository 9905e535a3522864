"""Where the tests' local nodes live: a folder other users can traverse.

Nodes run as their clusters' own unprivileged users, which must reach their homes under the
provider's root; pytest's temporary folders (``/tmp/pytest-of-root``) are 0700, so the
provider would rightly refuse them. Each root is a fresh ``/tmp/sahara-es-nodes-*`` (0711:
traversable, not listable), removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def node_root() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="sahara-es-nodes-"))
    folder.chmod(0o711)
    return folder


def remove_node_root(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
