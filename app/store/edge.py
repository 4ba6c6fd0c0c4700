"""Embedded store: the real Qdrant engine in-process (qdrant-edge), under ``<data-dir>/qdrant``.

Two named dense vectors, ``image`` and ``text`` (cosine, HNSW after ``build_index``), a third,
``instance``, when the model has an identity embedding (its size in the meta), one sparse
vector ``bm25`` with the IDF modifier (document side term weights from qdrant-edge's own BM25
embedder), and payload indexes on ``product_id``, ``category`` (all ancestors of the path),
numeric fields and the store's own ``graph_block`` (``app.store.graph_blocks``).

A store may be created with ``quantization="int8"`` (``snapshop bench`` compares it): the dense
vectors are then kept as scalar int8 codes in RAM, the float originals on disk (memory-mapped),
and searches rescore the quantised candidates with the originals.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from app.files import write_text_atomic
from app.store.base import (
    BM25_VECTOR,
    DEFAULT_INDEXING_THRESHOLD_KB,
    DENSE_VECTORS,
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    STORE_FORMAT,
    TEXT_VECTOR,
    DenseQuery,
    Hit,
    HnswOptions,
    IndexStatus,
    OneQuerySearches,
    PayloadSelection,
    PointRecord,
    SearchFilter,
    StoreInfo,
    StoreQuery,
    check_model,
    vector_dim,
)
from app.store.bm25 import Bm25Terms
from app.store.collections import now_iso
from app.store.edge_apart import (
    BUILDING_DIR,
    optimize_copy,
    put_back,
    recover,
    remove_leftovers,
    swap_in,
)
from app.store.edge_query import engine_filter, to_hits
from app.store.errors import StoreError
from app.store.fields import (
    FLOAT_FIELDS,
    HIT_FIELDS,
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    PRODUCT_ID,
)
from app.store.graph_blocks import GRAPH_BLOCK, engine_full_scan_kb, with_blocks
from app.store.hit_map import HitMap, hit_map
from app.store.rwlock import ReadWriteLock

log = logging.getLogger(__name__)

META_FILE = "snapshop.json"
SHARD_DIR = "shard"

QUANTIZATIONS = ("int8",)
# Quantised candidates fetched per wanted hit before rescoring with the float originals: int8
# codes reorder near-ties, and twice the candidates put the true top back in the list.
RESCORE_OVERSAMPLING = 2.0
QDRANT_DEFAULT_GRAPH = {"m": 16, "ef_construct": 100, "full_scan_kb": 10_000}
# Payload fields searches take from a map in memory instead of the engine: reading payloads
# cost the engine about 8 us per hit (0.9 of 1.3 ms for a leg of 100 hits at 3k products),
# while legs need only these of each hit (``HIT_FIELDS``).
MAPPED_FIELDS = HIT_FIELDS
MAP_ATTEMPTS = 3
# Payload indexes are read from their files, paged in as filters touch them, instead of being
# copied into the heap at load: 100k points, the shard alone, 302 -> 160 MB of anonymous
# memory, with filtered searches, counts and facets as fast (bench/README, the seventh run).
PAYLOAD_INDEX_MEMORY = qe.Memory.Cold


def payload_index_params(graph_blocks: int = 0) -> dict[str, qe.PayloadSchemaParams]:
    """The index of every field searches filter on, by field name. With ``graph_blocks`` the
    graph links points within the blocks only (``app.store.graph_blocks``); without, the
    engine decides per value, as it did for stores made before blocks."""
    cold = PAYLOAD_INDEX_MEMORY
    links = False if graph_blocks else None
    params: dict[str, qe.PayloadSchemaParams] = {}
    params.update(
        (name, qe.KeywordIndexParams(memory=cold, enable_hnsw=links)) for name in KEYWORD_FIELDS
    )
    params.update(
        (name, qe.IntegerIndexParams(lookup=True, range=True, memory=cold, enable_hnsw=links))
        for name in INTEGER_FIELDS
    )
    params.update(
        (name, qe.FloatIndexParams(memory=cold, enable_hnsw=links)) for name in FLOAT_FIELDS
    )
    if graph_blocks:
        params[GRAPH_BLOCK] = qe.KeywordIndexParams(memory=cold, enable_hnsw=True)
    return params


class EdgeStore(OneQuerySearches):
    """``VectorStore`` backed by one qdrant-edge shard (one process per directory)."""

    backend = "qdrant-edge"

    def __init__(
        self,
        root: Path,
        indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB,
        quantization: str | None = None,
        hnsw: HnswOptions | None = None,
        index_apart: bool = False,
    ) -> None:
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)} or None")
        self.root = root
        self._threshold_kb = indexing_threshold_kb
        # A serving process builds the index on a copy in a child process (``build_index``),
        # since the engine holds the GIL while it builds; a command line builds it here.
        self._index_apart = index_apart
        self._pending = 0  # points written (upserted or deleted) since the last index build
        # Set by close/drop: a build apart in flight stops instead of holding them up.
        self._closing = threading.Event()
        # Applies when this object creates the collection; an existing one keeps its own.
        self._quantization = quantization
        # The graph's m/ef_construct apply when this object creates the collection; the search
        # beam ``ef`` applies to every dense search of this object.
        self._hnsw = hnsw or HnswOptions()
        # Rescoring of quantised candidates (set on open); the beam and ACORN follow the
        # collection's size, read again after writes (``_search_params``).
        self._rescore: qe.QuantizationSearchParams | None = None
        self._params: tuple[int, qe.SearchParams] | None = None  # (writes seen, params)
        self._shard_dir = root / SHARD_DIR
        self._meta_path = root / META_FILE
        self._meta: dict[str, Any] | None = None
        self._shard: qe.EdgeShard | None = None
        self._bm25: Bm25Terms | None = None
        # Query-side terms do not depend on avg_len: one embedder serves every bm25_tokens call,
        # including the corpus scan at creation, before the collection's own exists.
        self._terms = Bm25Terms()
        # The engine is thread-safe for reads; writes are serialised so a batch lands as a unit.
        self._write_lock = threading.Lock()
        # Readers (searches) against writers that change points: see app/store/rwlock.py.
        # Index builds take only ``_write_lock``: they change no point, so searches go on.
        self._rw = ReadWriteLock()
        # point id -> MAPPED_FIELDS' values (``hit_map``); built on the first search that
        # can use it, then kept in step by every write (this process is the shard's only
        # writer). ``_writes`` counts writes, so a map read while a write landed is known
        # stale and read again.
        self._mapped: HitMap | None = None
        self._writes = 0
        self._mapping = threading.Lock()  # the map and the count change together
        self._building = threading.Lock()  # one search reads the map at a time
        if self._meta_path.exists():
            try:
                self._meta = json.loads(self._meta_path.read_text())
            except OSError as exc:
                raise StoreError(f"cannot read the store at {self.root}: {exc}") from exc
            if self._meta.get("format") == STORE_FORMAT:
                self._open(create=False)
            # else: an older layout; ensure_collection says what to do, searches say "empty".

    # -- lifecycle -----------------------------------------------------------------------------

    def _open(self, create: bool) -> None:
        assert self._meta is not None
        try:
            if create:
                self._shard = qe.EdgeShard.create(str(self._shard_dir), self._config())
            else:
                recover(self._shard_dir)
                self._shard = qe.EdgeShard.load(str(self._shard_dir))
            self._place_payload_indexes()
            remove_leftovers(self._shard_dir)  # this process holds the shard now
            self._closing.clear()  # open again (after a drop): builds may run
        except Exception as exc:  # the binding raises bare Exception
            if "WouldBlock" in str(exc):
                raise StoreError(
                    f"the store at {self.root} is open in another snapshop process "
                    "(an embedded shard allows one process); stop it or use another --data-dir"
                ) from exc
            raise StoreError(f"cannot open the store at {self.root}: {exc}") from exc
        self._bm25 = Bm25Terms(float(self._meta["bm25_avg_len"]))
        if self._meta.get("quantization"):
            # The engine's default for scalar codes is no rescoring: ask for it on every search.
            self._rescore = qe.QuantizationSearchParams(
                rescore=True, oversampling=RESCORE_OVERSAMPLING
            )
        self._params = None

    def _config(self) -> qe.EdgeConfig:
        assert self._meta is not None
        dim = int(self._meta["dim"])
        sizes = dict.fromkeys(DENSE_VECTORS, dim)
        instance_dim = int(self._meta.get("instance_dim", 0))
        if instance_dim:
            sizes[INSTANCE_VECTOR] = instance_dim
        vectors = {name: self._vector_params(size) for name, size in sizes.items()}
        graph = self._meta["hnsw"]
        return qe.EdgeConfig(
            vectors=vectors,
            hnsw_config=qe.HnswIndexConfig(
                m=int(graph["m"]),
                ef_construct=int(graph["ef_construct"]),
                full_scan_threshold=engine_full_scan_kb(
                    int(graph["full_scan_kb"]), self._graph_blocks()
                ),
            ),
            sparse_vectors={BM25_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            optimizers=qe.EdgeOptimizersConfig(
                indexing_threshold=int(self._meta["indexing_threshold_kb"])
            ),
        )

    def _graph_blocks(self) -> int:
        """Blocks a category level splits into in this collection (0: made before blocks)."""
        return int((self._meta or {}).get("hnsw", {}).get("graph_blocks", 0))

    def _vector_params(self, size: int) -> qe.EdgeVectorParams:
        assert self._meta is not None
        if self._meta.get("quantization") == "int8":
            # Codes in RAM, float originals memory-mapped: only rescoring reads them.
            codes = qe.ScalarQuantizationConfig(
                type=qe.ScalarType.Int8, quantile=0.99, always_ram=True
            )
            return qe.EdgeVectorParams(
                size=size, distance=qe.Distance.Cosine, on_disk=True, quantization_config=codes
            )
        return qe.EdgeVectorParams(size=size, distance=qe.Distance.Cosine)

    def _place_payload_indexes(self) -> None:
        """Give every indexed field its index, kept in its files (``payload_index_params``).

        A store made before indexes were kept on disk has them in the heap: each such index is
        made again, once (seconds per field at 100k points, about 2 minutes for all at 1M); a field
        without an index (a run stopped between dropping and making one) gets it.
        """
        shard = self._shard
        assert shard is not None
        have = shard.info().payload_schema
        for name, wanted in payload_index_params(self._graph_blocks()).items():
            info = have.get(name)
            params = info.params if info is not None else None
            if params is not None and getattr(params, "memory", None) == PAYLOAD_INDEX_MEMORY:
                continue
            if info is not None:
                # A warning, so that the command line shows it too: at 1M points the five
                # take about 2 minutes, with nothing else printed meanwhile.
                log.warning(
                    "moving the payload index of %r to disk at %s (once; ~30 s at 1M points)",
                    name,
                    self.root,
                )
                shard.update(qe.UpdateOperation.delete_field_index(name))
            shard.update(qe.UpdateOperation.create_field_index(name, wanted))

    def bm25_tokens(self, text: str) -> list[int]:
        """The engine's BM25 terms of ``text`` (``Bm25Terms.tokens``): for test oracles."""
        return self._terms.tokens(text)

    def dense_vectors(self) -> tuple[str, ...]:
        if self._meta is not None and int(self._meta.get("instance_dim", 0)):
            return (*DENSE_VECTORS, INSTANCE_VECTOR)
        return DENSE_VECTORS

    def ensure_collection(
        self,
        dim: int,
        model_id: str,
        corpus: Sequence[str] = (),
        instance_dim: int = 0,
        bundle: str | None = None,
    ) -> None:
        if self._meta is not None:
            check_model(
                self._meta, dim, model_id, instance_dim, f"the store at {self.root}", "--data-dir"
            )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if self._shard_dir.exists():
            # A shard without meta is a creation that was interrupted before any point was
            # written (points only come after this method returns): start it afresh.
            shutil.rmtree(self._shard_dir)
        self._meta = {
            "format": STORE_FORMAT,
            "dim": dim,
            "model_id": model_id,
            "instance_dim": instance_dim,
            "bm25_avg_len": self._terms.average_length(corpus),
            "indexing_threshold_kb": self._threshold_kb,
            "hnsw": {
                "m": self._hnsw.m,
                "ef_construct": self._hnsw.ef_construct,
                "full_scan_kb": self._hnsw.full_scan_kb,
                "graph_blocks": self._hnsw.graph_blocks,
            },
            "created_at": now_iso(),
            "bundle": bundle,
        }
        if self._quantization is not None:
            self._meta["quantization"] = self._quantization
        with self._rw.writing():  # searches running now see "empty" before or the shard after
            self._open(create=True)
        # Written after the shard exists, so a crash in between leaves no meta pointing at nothing.
        # Atomic: a crash mid-write must not leave a truncated meta file, which would make the
        # store unreadable rather than empty.
        write_text_atomic(self._meta_path, json.dumps(self._meta, indent=2))

    def probe(self) -> None:
        """Raise ``StoreError`` unless the store's files can be read now and it holds a shard.

        The open shard keeps serving from file handles it already has, so a volume that went
        away or lost its permissions would only show at the next write or restart: reading the
        meta and listing the shard directory finds it at once, and finds it back the same way.
        """
        if self._shard is None:
            self._require()
        try:
            json.loads(self._meta_path.read_text())
            os.listdir(self._shard_dir)
        except (OSError, ValueError) as exc:
            raise StoreError(f"the store at {self.root} cannot be read: {exc}") from exc

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreError(
                f"the store at {self.root} is empty: run `snapshop ingest CATALOG_DIR` first"
            )
        return self._shard

    def drop(self) -> None:
        self._closing.set()  # a build apart stops and frees the write lock
        with self._write_lock, self._rw.writing():
            self._close()
        self._meta_path.unlink(missing_ok=True)  # first: a crash mid-way leaves "empty"
        shutil.rmtree(self._shard_dir, ignore_errors=True)
        self._meta = None
        self._bm25 = None

    def close(self) -> None:
        self._closing.set()  # a build apart stops and frees the write lock
        with self._write_lock, self._rw.writing():
            self._close()

    def _close(self) -> None:
        with self._mapping:  # a map being read now is of a shard that is going away
            self._writes += 1
            self._mapped = None
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None

    # -- writes --------------------------------------------------------------------------------

    def reading(self) -> AbstractContextManager[None]:
        return self._rw.reading()

    def upsert(self, points: Sequence[PointRecord]) -> None:
        self.write(points, ())

    def delete(self, ids: Sequence[str]) -> None:
        self.write((), ids)

    def write(self, upsert: Sequence[PointRecord], delete: Sequence[str]) -> None:
        shard = self._require()
        assert self._bm25 is not None
        with_instance = INSTANCE_VECTOR in self.dense_vectors()
        splits = self._graph_blocks()
        qpoints = []
        for p in upsert:
            vectors: dict[str, Any] = {
                IMAGE_VECTOR: np.asarray(p.image_vector, dtype=np.float32).tolist(),
                TEXT_VECTOR: np.asarray(p.text_vector, dtype=np.float32).tolist(),
                BM25_VECTOR: self._bm25.document(p.text),
            }
            if with_instance:
                if p.instance_vector is None:
                    raise ValueError(f"point {p.id}: this collection needs an instance vector")
                vectors[INSTANCE_VECTOR] = np.asarray(p.instance_vector, np.float32).tolist()
            payload = with_blocks(p.id, p.payload, splits)
            qpoints.append(qe.Point(p.id, vectors, payload))
        # Vectors are built above, outside the locks: readers wait only for the engine calls.
        with self._write_lock, self._rw.writing():
            if qpoints:
                shard.update(qe.UpdateOperation.upsert_points(qpoints))
            if delete:
                shard.update(qe.UpdateOperation.delete_points(list(delete)))
            self._pending += len(qpoints) + len(delete)
            with self._mapping:
                self._writes += 1
                if self._mapped is not None:
                    for d in delete:
                        self._mapped.delete(str(d))
                    for p in upsert:
                        self._mapped.set(p.id, _mapped_values(p.payload))

    def build_index(self) -> bool:
        with self._write_lock:
            shard = self._require()
            if self._index_apart:
                return self._build_apart(shard)
            self._pending = 0
            return bool(shard.optimize())

    def _build_apart(self, shard: qe.EdgeShard) -> bool:
        """``optimize`` on a copy in a child process, then the copy swapped in: searches go on
        meanwhile, and wait only while the new shard opens (seconds at 1M points). Writes
        wait for the whole build (``_write_lock``), so the copy misses none.

        Below the indexing threshold's worth of written points, nothing is built: the engine
        would index none of them, they are searched exactly meanwhile, and copying the whole
        shard for that would cost more than it brings. They count towards the next build.
        """
        dim = int((self._meta or {}).get("dim", 0))
        # The engine indexes a segment once one of its vector fields passes the threshold.
        if self._pending * dim * 4 < self._collection_threshold_kb() * 1024:
            return False
        shard.flush()
        building = self.root / BUILDING_DIR
        built = optimize_copy(self._shard_dir, building, self._closing)
        with self._rw.writing():
            shard.close()
            self._shard = None
            old = swap_in(self._shard_dir, building)
            try:
                self._shard = qe.EdgeShard.load(str(self._shard_dir))
            except Exception as exc:  # the binding raises bare Exception
                put_back(self._shard_dir, old)
                self._shard = qe.EdgeShard.load(str(self._shard_dir))
                raise StoreError(f"the built index at {self.root} would not open: {exc}") from exc
        self._pending = 0
        shutil.rmtree(old, ignore_errors=True)
        log.info("index built apart and swapped in at %s", self.root)
        return built

    # -- reads ---------------------------------------------------------------------------------

    def _search_params(self) -> qe.SearchParams:
        """Every dense search's engine params: the beam and ACORN for the collection's size
        now (``HnswOptions.beam``, ``acorn``), and rescoring when it is quantised."""
        writes = self._writes
        cached = self._params
        if cached is not None and cached[0] == writes:
            return cached[1]
        points = self._require().info().points_count
        share = self._hnsw.acorn(points)
        acorn = None if share is None else qe.AcornSearchParams(enable=True, max_selectivity=share)
        params = qe.SearchParams(
            hnsw_ef=self._hnsw.beam(points), quantization=self._rescore, acorn=acorn
        )
        self._params = (writes, params)
        return params

    def scans(self, flt: SearchFilter | None, using: str) -> bool:
        """Whether a search of ``using`` vectors filtered by ``flt`` scans the filter's matches
        exactly (``HnswOptions.scans``), counted from the payload index (an estimate for
        several conditions, microseconds)."""
        engine = engine_filter(flt)
        if engine is None:
            return False
        matches = self._require().count(qe.CountRequest(filter=engine, exact=False))
        meta = self._meta or {}
        created = int(meta.get("hnsw", QDRANT_DEFAULT_GRAPH)["full_scan_kb"])
        return self._hnsw.scans(int(matches), vector_dim(meta, using), created)

    def search_dense_with(
        self,
        vector: np.ndarray,
        limit: int,
        flt: SearchFilter | None = None,
        using: str = IMAGE_VECTOR,
        *,
        exact: bool = False,
        rescore: bool | None = None,
        ef: int | None = None,
    ) -> list[Hit]:
        """``search_dense`` (no payloads) with the engine's search knobs, for measuring the
        index: ``exact`` scans every vector (the ground truth for ANN recall); ``rescore``
        turns rescoring of quantised candidates on or off (None: the store's default); ``ef``
        is the search beam (None: the store's). A filter this store scans (``scans``) is
        scanned here too, as searches are served."""
        shard = self._require()
        if using not in self.dense_vectors():
            raise ValueError(f"unknown dense vector {using!r}")
        params = self._search_params()
        quantization = params.quantization
        if rescore is not None:
            oversampling = RESCORE_OVERSAMPLING if rescore else None
            quantization = qe.QuantizationSearchParams(rescore=rescore, oversampling=oversampling)
        req = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist(), using=using),
            filter=engine_filter(flt),
            params=qe.SearchParams(
                hnsw_ef=ef or params.hnsw_ef,
                exact=exact or self.scans(flt, using),
                quantization=quantization,
                acorn=params.acorn,
            ),
            with_payload=False,
            with_vector=False,
        )
        return to_hits(shard.query(req))

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        shard = self._require()
        mapped = [_only_mapped(q.with_payload) for q in queries]
        lookup = self._mapped_points() if any(mapped) else None
        requests = [
            self._request(q, payload=not (m and lookup is not None))
            for q, m in zip(queries, mapped, strict=True)
        ]
        sent = [r for r in requests if r is not None]
        answers = iter(shard.query_batch(qe.QueryBatchRequest(sent)) if sent else [])
        out: list[list[Hit]] = []
        for q, m, r in zip(queries, mapped, requests, strict=True):
            if r is None:
                out.append([])
            elif m and lookup is not None:
                out.append(self._from_map(next(answers), q.with_payload, lookup))
            else:
                out.append(to_hits(next(answers)))
        return out

    def warm(self) -> None:
        try:
            self._mapped_points()
        except Exception as exc:  # closed meanwhile (a swap); the next search reads it again
            log.info("the store at %s was not warmed: %s", self.root, exc)

    def _mapped_points(self) -> HitMap | None:
        """The map of MAPPED_FIELDS, read from the engine once; None (searches then read the
        engine's payloads) while there is no shard, or when writes kept landing while it was
        read."""
        if self._mapped is not None or self._shard is None:
            return self._mapped
        with self._building:
            for _ in range(MAP_ATTEMPTS):
                if self._mapped is not None:
                    break
                seen = self._writes
                rows = ((h.id, _mapped_values(h.payload)) for h in self.scan(MAPPED_FIELDS))
                built = hit_map(rows, self.count())
                with self._mapping:
                    if self._writes == seen:  # no write landed while it was read
                        self._mapped = built
        return self._mapped

    def _from_map(
        self,
        points: Sequence[qe.ScoredPoint],
        fields: PayloadSelection,
        lookup: HitMap,
    ) -> list[Hit]:
        assert isinstance(fields, tuple)
        # Every search's every hit passes here (~300 a query), all of it under the GIL: plain
        # loops and positional arguments took it from 0.41 to 0.31 ms per 100 hits.
        pairs = [(f, MAPPED_FIELDS.index(f)) for f in fields]
        hits = []
        ids = [str(p.id) for p in points]
        for p, pid, values in zip(points, ids, lookup.get_many(ids), strict=True):
            if values is None:  # written or deleted since the engine answered: ask it again
                found = self.retrieve([pid])
                values = _mapped_values(found[0].payload if found else {})
            payload: dict[str, Any] = {}
            for name, i in pairs:
                if values[i]:
                    payload[name] = values[i]
            hits.append(Hit(pid, p.score, payload))  # the engine's score is a float already
        return hits

    def _request(self, query: StoreQuery, payload: bool = True) -> qe.QueryRequest | None:
        """The engine's request for ``query``; None when it cannot match anything."""
        if isinstance(query, DenseQuery):
            have = self.dense_vectors()
            if query.using not in have:
                raise ValueError(f"unknown dense vector {query.using!r}; have {', '.join(have)}")
            vector = np.asarray(query.vector, dtype=np.float32).tolist()
            nearest = qe.Query.Nearest(vector, using=query.using)
            params = self._search_params()
            exact = self.scans(query.flt, query.using)
            if query.ef is not None or exact:
                params = qe.SearchParams(
                    hnsw_ef=query.ef or params.hnsw_ef,
                    exact=exact,
                    quantization=params.quantization,
                    acorn=params.acorn,
                )
        else:
            assert self._bm25 is not None
            sparse = self._bm25.query(query.text)
            if not sparse.indices:  # only stopwords or punctuation: nothing can match
                return None
            nearest = qe.Query.Nearest(sparse, using=BM25_VECTOR)
            params = None
        selected = query.with_payload if payload else False
        return qe.QueryRequest(
            limit=query.limit,
            query=nearest,
            filter=engine_filter(query.flt),
            score_threshold=query.min_score,
            with_payload=selected if isinstance(selected, bool) else list(selected),
            with_vector=False,
            # The search beam, and rescoring of quantised candidates.
            params=params,
        )

    def retrieve(self, ids: Sequence[str]) -> list[Hit]:
        shard = self._require()
        records = shard.retrieve(list(ids), with_payload=True, with_vector=False)
        return [Hit(id=str(r.id), score=0.0, payload=dict(r.payload or {})) for r in records]

    def vectors(
        self, ids: Sequence[str], using: Sequence[str] | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        shard = self._require()
        names = list(using) if using is not None else list(self.dense_vectors())
        # Named, never all: all would bring the sparse BM25 vector too (10 points at 1M: 4.7 ms
        # with it, 1.4 ms for the three dense ones, 0.4 ms for the image vector alone).
        records = shard.retrieve(list(ids), with_payload=False, with_vector=names)
        out: dict[str, dict[str, np.ndarray]] = {}
        for r in records:
            named = r.vector if isinstance(r.vector, dict) else {}
            out[str(r.id)] = {
                name: np.asarray(named[name], dtype=np.float32) for name in names if name in named
            }
        return out

    def product_points(self, product_id: str) -> list[Hit]:
        if self._shard is None:
            return []
        cond = qe.FieldCondition(PRODUCT_ID, match=qe.MatchValue(product_id))
        records, _ = self._shard.scroll(
            qe.ScrollRequest(limit=10_000, filter=qe.Filter(must=[cond]), with_payload=True)
        )
        return [Hit(id=str(r.id), score=0.0, payload=dict(r.payload or {})) for r in records]

    def scan(self, fields: Sequence[str], page: int = 1000) -> Iterator[Hit]:
        if self._shard is None:
            return
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=page, with_payload=list(fields))
            )
            for r in records:
                yield Hit(id=str(r.id), score=0.0, payload=dict(r.payload or {}))
            if offset is None:
                return

    def facet(self, key: str, ids: Sequence[str], limit: int = 1_000) -> list[tuple[str, int]]:
        if self._shard is None or not ids:
            return []
        # counted by the engine over exactly these points (exact, not the estimate)
        only = qe.Filter(must=[qe.HasIdCondition(set(ids))])
        found = self._shard.facet(qe.FacetRequest(key=key, limit=limit, exact=True, filter=only))
        return [(str(h.value), int(h.count)) for h in found.hits]

    def count(self, flt: SearchFilter | None = None) -> int:
        if self._shard is None:
            return 0
        return int(self._shard.count(qe.CountRequest(filter=engine_filter(flt), exact=True)))

    def _collection_threshold_kb(self) -> int:
        """The indexing threshold the collection was created with (the engine's, not ours)."""
        return int((self._meta or {}).get("indexing_threshold_kb", self._threshold_kb))

    def index_status(self) -> IndexStatus:
        with self._rw.reading():  # see ``info``
            shard = self._shard
            info = shard.info() if shard is not None else None
        return self._status_of(info)

    def _status_of(self, info: qe.ShardInfo | None) -> IndexStatus:
        """The index status from the shard's ``info()`` (None: no shard)."""
        dim = int((self._meta or {}).get("dim") or 1)
        threshold_kb = self._collection_threshold_kb()
        if info is None:
            return IndexStatus.of(0, 0, len(DENSE_VECTORS), dim, threshold_kb)
        per_point = len(self.dense_vectors())
        return IndexStatus.of(
            int(info.points_count), int(info.indexed_vectors_count), per_point, dim, threshold_kb
        )

    def info(self) -> StoreInfo:
        # Under the readers' lock: while a built index is swapped in there is no shard for a
        # moment, and /healthz should wait for the new one, not report an empty store.
        with self._rw.reading():
            meta = self._meta or {}
            shard = self._shard
            if shard is None:
                return StoreInfo(self.backend, 0, 0, 0, None, None)
            shard_info = shard.info()
        graph = meta.get("hnsw", QDRANT_DEFAULT_GRAPH)
        return StoreInfo(
            backend=self.backend,
            points=int(shard_info.points_count),
            indexed_vectors=int(shard_info.indexed_vectors_count),
            segments=int(shard_info.segments_count),
            dim=meta.get("dim"),
            model_id=meta.get("model_id"),
            extra={
                "path": str(self.root),
                "format": meta.get("format"),
                "bm25_avg_len": meta.get("bm25_avg_len"),
                "instance_dim": int(meta.get("instance_dim", 0)),
                "created_at": meta.get("created_at"),
                "bundle": meta.get("bundle"),
                "quantization": meta.get("quantization"),
                # Stores made before the graph was configurable have Qdrant's defaults.
                # The beam and ACORN ceiling its searches use at this size (HnswOptions).
                "hnsw": {
                    **graph,
                    # Filters scan (``scans``) below the collection's threshold or the
                    # setting's, whichever is larger.
                    "full_scan_kb": max(int(graph["full_scan_kb"]), self._hnsw.full_scan_kb),
                    "ef": self._hnsw.beam(int(shard_info.points_count)),
                    "acorn": self._hnsw.acorn(int(shard_info.points_count)),
                },
                "index": self._status_of(shard_info).describe(),
            },
        )


def _only_mapped(selected: PayloadSelection) -> bool:
    """Whether a search asking for ``selected`` can take its payloads from the map."""
    return isinstance(selected, tuple) and bool(selected) and set(selected) <= set(MAPPED_FIELDS)


def _mapped_values(payload: dict[str, Any]) -> tuple[str, str, str]:
    product, image, path = (str(payload.get(f) or "") for f in MAPPED_FIELDS)
    return product, image, path
