"""The benchmark's requests: typed queries, photos, and photos with a few words, from query files.

They come from a folder in the dev_queries format (``text_queries.csv``, ``image_queries.csv``):
by default the one beside the catalog that the data dir was last ingested from. A photo + text
request adds the photo's category name ("soyghurt"), as a shopper narrowing a snapshot would;
where the file gives no category, a typed query's words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from app.evaluation.queries import read_image_queries, read_text_queries
from ingestion.runs import OK, list_runs

TYPED, PHOTO, PHOTO_TEXT = "typed", "photo", "photo_text"
MODES = (TYPED, PHOTO, PHOTO_TEXT)
QUERIES_FOLDER = "dev_queries"  # where a catalog keeps its query files (see the dev catalog)


class BenchSetupError(RuntimeError):
    """Something the benchmark needs is missing; the message says what to give."""


@dataclass(frozen=True)
class BenchRequest:
    """One search as a client sends it."""

    mode: str
    name: str  # the query's id: the same request is compared across stacks by it
    text: str | None = None
    image: bytes | None = None


@dataclass(frozen=True)
class BenchQueries:
    source: Path
    requests: dict[str, list[BenchRequest]]  # mode -> requests, shuffled once (seeded)

    def take(self, mode: str, n: int) -> list[BenchRequest]:
        """The first ``n`` requests of ``mode``, cycling when the file has fewer."""
        pool = self.requests[mode]
        return [pool[i % len(pool)] for i in range(n)]


def last_catalog(runs_dir: Path) -> Path | None:
    """The catalog folder of the data dir's newest successful ingest, if it still exists."""
    for record in list_runs(runs_dir):
        if record.state == OK and Path(record.catalog).is_dir():
            return Path(record.catalog)
    return None


def find_queries_dir(given: Path | None, catalog: Path | None) -> Path:
    """``given``, or ``<catalog>/dev_queries``; a clear error when neither holds query files."""
    if given is not None:
        folder = given
    elif catalog is not None and (catalog / QUERIES_FOLDER).is_dir():
        folder = catalog / QUERIES_FOLDER
    else:
        raise BenchSetupError(
            "no query files found: give --queries DIR (a folder with text_queries.csv and "
            f"image_queries.csv, as the dev catalog's {QUERIES_FOLDER}/)"
        )
    for name in ("text_queries.csv", "image_queries.csv"):
        if not (folder / name).is_file():
            raise BenchSetupError(f"{folder / name}: not found (the benchmark needs both files)")
    return folder


def load_queries(folder: Path, seed: int = 0) -> BenchQueries:
    """The typed, photo and photo + text requests of the query files in ``folder``."""
    texts = read_text_queries(folder / "text_queries.csv")
    photos = read_image_queries(folder / "image_queries.csv")
    if not texts or not photos:
        raise BenchSetupError(f"{folder}: the query files must hold at least one query each")
    rng = random.Random(seed)
    rng.shuffle(texts)
    rng.shuffle(photos)
    typed = [BenchRequest(TYPED, q.query_id, text=q.text) for q in texts]
    photo: list[BenchRequest] = []
    photo_text: list[BenchRequest] = []
    for i, q in enumerate(photos):
        data = q.image.read_bytes()
        words = q.category.rsplit("/", 1)[-1].strip().lower() or texts[i % len(texts)].text
        photo.append(BenchRequest(PHOTO, q.query_id, image=data))
        photo_text.append(BenchRequest(PHOTO_TEXT, q.query_id, text=words, image=data))
    return BenchQueries(folder, {TYPED: typed, PHOTO: photo, PHOTO_TEXT: photo_text})
