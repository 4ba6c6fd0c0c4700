"""Catalog images resized for pages: made once per (file, width), cached under the data dir.

The cache key covers the file's path, size and modification time, so a re-ingested photo that
changed gets a new thumbnail (and a new ETag) while an unchanged one is never redone.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

JPEG_QUALITY = 85
MAX_ASPECT = 2  # a thumbnail is at most twice as tall as wide: a banner image cannot blow up
_VERSION = "1"  # bump when the resizing changes, so old cached files are not served


class Thumbnails:
    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def get(self, source: Path, width: int) -> tuple[Path, str]:
        """(thumbnail file, its ETag value) for ``source`` at ``width`` px wide at most."""
        st = source.stat()
        ident = f"{_VERSION}\0{source}\0{st.st_size}\0{st.st_mtime_ns}\0{width}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:32]
        out = self.cache_dir / key[:2] / f"{key}.jpg"
        if not out.is_file():
            self._make(source, width, out)
        return out, key

    @staticmethod
    def _make(source: Path, width: int, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as opened:
            im = ImageOps.exif_transpose(opened).convert("RGB")
            im.thumbnail((width, width * MAX_ASPECT), Image.Resampling.LANCZOS)  # never enlarges
            # written beside the target, then renamed: a reader never sees half a JPEG, and two
            # requests making the same thumbnail at once both end with a whole file
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    im.save(fh, "JPEG", quality=JPEG_QUALITY, optimize=True)
                os.replace(tmp, out)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
