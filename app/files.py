"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Used for every small file snapshop rewrites in place (bundle manifests, the store's meta file,
ingest run records, quarantine reports). A plain module with no snapshop imports, so that
``ingestion`` may use it without depending on anything above it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

# mkstemp creates private (0600) files; what snapshop writes is meant to be readable by others.
DEFAULT_MODE = 0o644


@contextmanager
def atomic_writer(path: Path, mode: int = DEFAULT_MODE) -> Iterator[TextIO]:
    """A UTF-8 text handle whose content replaces ``path`` when the block ends.

    It writes a hidden temporary file in the same folder (a rename is atomic only within one
    file system) and renames it over ``path``; on an error the temporary file is removed and
    ``path`` is left as it was.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, mode: int = DEFAULT_MODE) -> None:
    """Replace ``path`` with ``text`` atomically (see ``atomic_writer``)."""
    with atomic_writer(path, mode) as fh:
        fh.write(text)
