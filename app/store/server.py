"""Qdrant server (or cluster) backend over qdrant-client: the catalog is one collection there.

The collection has the embedded engine's layout: named dense vectors ``image`` and ``text``
(+ ``instance``), cosine; a sparse ``bm25`` vector with the IDF modifier whose document weights
are made by the same embedder (``app.store.bm25``), so both backends score alike; payload
indexes on the fields that filters and facets use. What ``EdgeStore`` keeps in snapshop.json
(format, model, sizes, BM25 average length) is the collection's metadata here, so every process
that opens the collection reads the same.

qdrant-client's local mode (``QdrantClient(path=...)``) speaks the same API without a server:
it stands in for one in tests (``SNAPSHOP_QDRANT_PATH``), never in production.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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
    PointRecord,
    SearchFilter,
    StoreInfo,
    StoreQuery,
    check_model,
    vector_dim,
)
from app.store.bm25 import Bm25Terms, as_pair
from app.store.collections import model_tag, now_iso
from app.store.errors import StoreError, StoreUnavailableError
from app.store.fields import FLOAT_FIELDS, INTEGER_FIELDS, KEYWORD_FIELDS
from app.store.graph_blocks import GRAPH_BLOCK, engine_full_scan_kb, with_blocks
from app.store.rwlock import ReadWriteLock
from app.store.server_query import (
    ids_filter,
    payload_selector,
    product_filter,
    server_filter,
    to_hits,
)

log = logging.getLogger(__name__)

META_KEY = "snapshop"  # the collection metadata key holding what EdgeStore's snapshop.json holds
PAGE = 1_000  # points per scroll page
MAX_PRODUCT_POINTS = 10_000  # images of one product fetched at most (as EdgeStore)


def index_schemas(graph_blocks: int = 0) -> list[tuple[str, Any]]:
    """Each indexed field's schema; with ``graph_blocks``, only the blocks build graph links
    (as ``EdgeStore``'s ``payload_index_params``, for the same reason: app.store.graph_blocks)."""
    links = False if graph_blocks else None
    keyword = models.KeywordIndexType.KEYWORD
    schemas: list[tuple[str, Any]] = [
        (name, models.KeywordIndexParams(type=keyword, enable_hnsw=links))
        for name in KEYWORD_FIELDS
    ]
    schemas += [
        (
            name,
            models.IntegerIndexParams(
                type=models.IntegerIndexType.INTEGER, lookup=True, range=True, enable_hnsw=links
            ),
        )
        for name in INTEGER_FIELDS
    ]
    schemas += [
        (name, models.FloatIndexParams(type=models.FloatIndexType.FLOAT, enable_hnsw=links))
        for name in FLOAT_FIELDS
    ]
    if graph_blocks:
        schemas.append((GRAPH_BLOCK, models.KeywordIndexParams(type=keyword, enable_hnsw=True)))
    return schemas


@dataclass(frozen=True)
class _Collection:
    """What the store knows of its collection: replaced whole, so a reader on another thread
    never sees the metadata of one collection with the BM25 weights of another.

    ``name``: the collection itself, the alias resolved (every call goes to it, so an alias
    moved by another process changes nothing here until the collection is read afresh)."""

    name: str
    meta: dict[str, Any]
    bm25: Bm25Terms

    @classmethod
    def of(cls, name: str, meta: dict[str, Any]) -> _Collection:
        return cls(name, meta, Bm25Terms(float(meta["bm25_avg_len"])))

    @property
    def graph_blocks(self) -> int:
        """Blocks a category level splits into here (0: a collection made before blocks)."""
        return int(self.meta.get("graph_blocks", 0))


# Seconds a read of the collection's size stays good for choosing the search beam.
SIZE_TTL_S = 30.0
# Filters whose match counts are kept at once (``_scans_in``); past it the counts start afresh.
MAX_COUNTED_FILTERS = 1024


@dataclass(frozen=True)
class ServerOptions:
    """How the collection is named and, when this store creates it, laid out."""

    collection: str = "snapshop"
    # ``collection`` is an alias (or a collection made before snapshop used aliases): a fresh
    # one is created as ``<collection>-<model tag>`` with the alias pointing at it, so a later
    # model's collection can be swapped in. False: ``collection`` is the collection itself.
    alias: bool = True
    shard_number: int | None = None  # None: the server's default
    replication_factor: int | None = None
    on_disk_payload: bool | None = None
    scalar_quantization: bool = False
    indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB
    hnsw: HnswOptions = field(default_factory=HnswOptions)


@contextmanager
def server_calls(
    subject: str, doing: str, on_gone: Callable[[], None] | None = None
) -> Iterator[None]:
    """Server calls inside: a failure becomes ``StoreUnavailableError`` (down, slow, 5xx: try
    again), or a plain ``StoreError`` (``subject`` gone, the request refused); ``on_gone`` runs
    when the server says ``subject`` is not there."""
    try:
        yield
    except (
        ResponseHandlingException,
        UnexpectedResponse,
        grpc.RpcError,
        httpx.HTTPError,
        OSError,
    ) as exc:
        code = getattr(exc, "code", None)  # a failed gRPC call's status (grpc.Call)
        gone = (isinstance(exc, UnexpectedResponse) and exc.status_code == 404) or (
            isinstance(exc, grpc.RpcError)
            and callable(code)
            and code() == grpc.StatusCode.NOT_FOUND
        )
        if gone:
            if on_gone is not None:
                on_gone()
            raise StoreError(f"{subject} is gone: run `snapshop ingest CATALOG_DIR`") from exc
        status = exc.status_code if isinstance(exc, UnexpectedResponse) else None
        if status is not None and status < 500 and status != 429:
            raise StoreError(f"{subject} refused to {doing}: {exc}") from exc
        raise StoreUnavailableError(f"{subject} could not {doing} now: {exc}") from exc


def url_client(
    url: str,
    api_key: str | None = None,
    prefer_grpc: bool = False,
    grpc_port: int = 6334,
    timeout_s: int = 10,
) -> QdrantClient:
    """A client of the server at ``url``; nothing is asked of the server yet."""
    return QdrantClient(
        url=url,
        api_key=api_key,
        prefer_grpc=prefer_grpc,
        grpc_port=grpc_port,
        timeout=timeout_s,
        # The version check is a request at construction; an unreachable server must not
        # hold up startup (``/readyz`` reports it instead).
        check_compatibility=False,
    )


def path_client(path: Path) -> QdrantClient:
    """qdrant-client's local mode in ``path`` (one process at a time)."""
    try:
        # Searches run on the service's thread pool, writes on a sync's thread.
        return QdrantClient(path=str(path), force_disable_check_same_thread=True)
    except RuntimeError as exc:  # the folder's lock is held
        raise StoreError(
            f"the local Qdrant folder {path} is open in another process (local mode allows "
            "one); stop it, or use a Qdrant server"
        ) from exc


class QdrantServerStore(OneQuerySearches):
    """``VectorStore`` over one collection of a Qdrant server, cluster or local-mode folder.

    Nothing is asked of the server when the store is made: a server that is down makes the
    calls fail with ``StoreUnavailableError`` (HTTP 503) until it is back, with no restart.
    """

    def __init__(
        self,
        client: QdrantClient,
        options: ServerOptions,
        where: str,
        local: bool = False,
        owns_client: bool = True,
    ) -> None:
        self._client = client
        # False: the client is shared (``ServerCollections`` hands it to each of its stores;
        # local mode allows one client per folder) and closed by its owner.
        self._owns_client = owns_client
        self.options = options
        self.collection = options.collection
        self.where = where  # the server's URL or the local folder: for messages
        self.local = local
        self.backend = "qdrant-local" if local else "qdrant-server"
        self._known: _Collection | None = None
        self._terms = Bm25Terms()  # query-side terms and corpus lengths (see EdgeStore)
        self._write_lock = threading.Lock()
        # In-process readers and writers, as EdgeStore: a search in this process sees each
        # product written by this process whole. Other processes' writes are the server's.
        self._rw = ReadWriteLock()
        # (monotonic time read, points): the collection's size, which picks the search beam
        # and ACORN (``HnswOptions``); read again after this process writes, or once stale,
        # since other processes may sync the collection too.
        self._size: tuple[float, int] | None = None
        # filter -> (monotonic time read, estimated matches), for ``HnswOptions.scans``; kept
        # as the size is, and bounded: filters come from requests.
        self._matches: dict[SearchFilter, tuple[float, int]] = {}

    @classmethod
    def at_url(
        cls,
        url: str,
        options: ServerOptions,
        api_key: str | None = None,
        prefer_grpc: bool = False,
        grpc_port: int = 6334,
        timeout_s: int = 10,
    ) -> QdrantServerStore:
        client = url_client(url, api_key, prefer_grpc, grpc_port, timeout_s)
        return cls(client, options, where=url)

    @classmethod
    def at_path(cls, path: Path, options: ServerOptions) -> QdrantServerStore:
        """qdrant-client's local mode in ``path``: one process, exact search, for tests."""
        return cls(path_client(path), options, where=str(path), local=True)

    # -- errors --------------------------------------------------------------------------------

    def _calls(self, doing: str) -> AbstractContextManager[None]:
        """Engine calls inside: their failures become ``StoreError``s that say what to do; a
        collection gone (dropped by another process) is read afresh next time."""
        return server_calls(
            f"the collection {self.collection!r} at {self.where}", doing, self._forget
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def _resolve(self) -> str:
        """The collection ``collection`` names now: the alias's target, else itself."""
        if not self.options.alias:
            return self.collection
        with self._calls("be read"):
            aliases = self._client.get_aliases().aliases
        return alias_target(aliases, self.collection) or self.collection

    def _read_meta(self) -> tuple[str, dict[str, Any]] | None:
        """The collection and its snapshop metadata, asked afresh; None when there is none."""
        name = self._resolve()
        with self._calls("be read"):
            if not self._client.collection_exists(name):
                return None
            info = self._client.get_collection(name)
        meta = (info.config.metadata or {}).get(META_KEY)
        if not isinstance(meta, dict):
            raise StoreError(
                f"the collection {name!r} at {self.where} was not made by snapshop "
                f"(its metadata has no {META_KEY!r}); set SNAPSHOP_QDRANT_COLLECTION to another "
                "name"
            )
        return name, meta

    def _load(self, fresh: bool = False) -> _Collection | None:
        """The collection as known, read when not yet known (or ``fresh``); None: there is none.

        Kept once read: only ``probe``, ``ensure_collection`` and a 404 read it again, so a
        collection re-made by another process is seen at the next readiness probe.
        """
        known = self._known
        if known is None or fresh:
            found = self._read_meta()
            known = _Collection.of(*found) if found is not None else None
            self._known = known
        return known

    def _forget(self) -> None:
        self._known = None
        self._size = None
        self._matches = {}

    def _points(self, known: _Collection) -> int:
        """The collection's point count, read at most every ``SIZE_TTL_S`` seconds."""
        size = self._size
        now = time.monotonic()
        if size is None or now - size[0] > SIZE_TTL_S:
            with self._calls("be counted"):
                size = (now, int(self._client.count(known.name, exact=False).count))
            self._size = size
        return size[1]

    def scans(self, flt: SearchFilter | None, using: str) -> bool:
        return self._scans_in(self._require(), flt, using)

    def _scans_in(self, known: _Collection, flt: SearchFilter | None, using: str) -> bool:
        """Whether a search of ``using`` vectors filtered by ``flt`` scans the filter's matches
        exactly (``HnswOptions.scans``), from the server's estimate of the matches."""
        engine = server_filter(flt)
        if engine is None or flt is None:
            return False
        now = time.monotonic()
        seen = self._matches.get(flt)
        if seen is None or now - seen[0] > SIZE_TTL_S:
            with self._calls("be counted"):
                counted = self._client.count(known.name, count_filter=engine, exact=False)
            matches = int(counted.count)
            if len(self._matches) >= MAX_COUNTED_FILTERS:
                self._matches.clear()
            seen = self._matches[flt] = (now, matches)
        created = int(known.meta.get("full_scan_kb", 0))
        return self.options.hnsw.scans(seen[1], vector_dim(known.meta, using), created)

    def _require(self) -> _Collection:
        known = self._load()
        if known is None:
            raise StoreError(
                f"the collection {self.collection!r} at {self.where} does not exist yet: run "
                "`snapshop ingest CATALOG_DIR` first"
            )
        if known.meta.get("format") != STORE_FORMAT:
            raise StoreError(
                f"the collection {self.collection!r} at {self.where} has store format "
                f"{known.meta.get('format')}; re-ingest with --replace-model"
            )
        return known

    def ensure_collection(
        self,
        dim: int,
        model_id: str,
        corpus: Sequence[str] = (),
        instance_dim: int = 0,
        bundle: str | None = None,
    ) -> None:
        with self._write_lock:
            known = self._load(fresh=True)
            if known is None and self.options.alias:
                # A fresh alias: its collection is named after the model. One of that name may
                # be there already (built, never made live): it is checked and taken.
                physical = f"{self.collection}-{model_tag(model_id)}"
                found = self._meta_of(physical)
                known = _Collection.of(physical, found) if found is not None else None
            else:
                physical = self.collection
            if known is not None:
                where = f"the collection {known.name!r} at {self.where}"
                check_model(
                    known.meta, dim, model_id, instance_dim, where, "SNAPSHOP_QDRANT_COLLECTION"
                )
            else:
                meta = {
                    "format": STORE_FORMAT,
                    "dim": dim,
                    "model_id": model_id,
                    "instance_dim": instance_dim,
                    "bm25_avg_len": self._terms.average_length(corpus),
                    "graph_blocks": self.options.hnsw.graph_blocks,
                    "full_scan_kb": self.options.hnsw.full_scan_kb,
                    "created_at": now_iso(),
                    "bundle": bundle,
                }
                self._create(physical, meta)
                known = _Collection.of(physical, meta)
            if known.name != self.collection:
                self._point_alias(known.name)
            self._known = known
            # Indexes are made after the collection: one interrupted in between gets them now.
            self._create_indexes(known.name, known.graph_blocks)

    def _meta_of(self, name: str) -> dict[str, Any] | None:
        with self._calls("be read"):
            if not self._client.collection_exists(name):
                return None
            meta = (self._client.get_collection(name).config.metadata or {}).get(META_KEY)
        return meta if isinstance(meta, dict) else None

    def _point_alias(self, name: str) -> None:
        """The alias ``collection`` at ``name``, unless it points somewhere already."""
        with self._calls("be aliased"):
            if alias_target(self._client.get_aliases().aliases, self.collection) is not None:
                return
            create = models.CreateAlias(collection_name=name, alias_name=self.collection)
            self._client.update_collection_aliases(
                [models.CreateAliasOperation(create_alias=create)]
            )

    def _create(self, collection: str, meta: dict[str, Any]) -> None:
        o = self.options
        vectors = {
            name: models.VectorParams(size=int(meta["dim"]), distance=models.Distance.COSINE)
            for name in DENSE_VECTORS
        }
        if int(meta["instance_dim"]):
            vectors[INSTANCE_VECTOR] = models.VectorParams(
                size=int(meta["instance_dim"]), distance=models.Distance.COSINE
            )
        quantization = None
        if o.scalar_quantization:
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(
                    type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                )
            )
        with self._calls("be created"):
            self._client.create_collection(
                collection,
                vectors_config=vectors,
                sparse_vectors_config={
                    BM25_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
                shard_number=o.shard_number,
                replication_factor=o.replication_factor,
                on_disk_payload=o.on_disk_payload,
                optimizers_config=models.OptimizersConfigDiff(
                    indexing_threshold=o.indexing_threshold_kb
                ),
                hnsw_config=models.HnswConfigDiff(
                    m=o.hnsw.m,
                    ef_construct=o.hnsw.ef_construct,
                    full_scan_threshold=engine_full_scan_kb(
                        o.hnsw.full_scan_kb, int(meta.get("graph_blocks", 0))
                    ),
                ),
                quantization_config=quantization,
                metadata={META_KEY: meta},
            )

    def _create_indexes(self, collection: str, blocks: int) -> None:
        """Payload indexes the collection lacks (local mode has none: it scans)."""
        if self.local:
            return
        with self._calls("be indexed"):
            have = set(self._client.get_collection(collection).payload_schema)
            for name, schema in index_schemas(blocks):
                if name not in have:
                    self._client.create_payload_index(
                        collection, name, field_schema=schema, wait=True
                    )

    def warm(self) -> None:
        """Nothing to load: the server holds the collection."""

    def probe(self) -> None:
        """Raise ``StoreError`` unless the server answers and holds the collection: asked
        afresh each time, so a collection re-made by another process is read again."""
        self._load(fresh=True)
        self._require()

    def dense_vectors(self) -> tuple[str, ...]:
        try:
            known = self._load()
        except StoreUnavailableError:
            known = None  # asked per query: the search itself reports the server being down
        return self._dense_of(known)

    @staticmethod
    def _dense_of(known: _Collection | None) -> tuple[str, ...]:
        if known is not None and int(known.meta.get("instance_dim", 0)):
            return (*DENSE_VECTORS, INSTANCE_VECTOR)
        return DENSE_VECTORS

    def drop(self) -> None:
        """Delete the collection (its alias goes with it on the server)."""
        with self._write_lock, self._rw.writing():
            known = self._load(fresh=True)
            with self._calls("be deleted"):
                self._client.delete_collection(known.name if known else self.collection)
            self._forget()

    def close(self) -> None:
        with self._write_lock, self._rw.writing():
            if self._owns_client:
                self._client.close()

    # -- writes --------------------------------------------------------------------------------

    def reading(self) -> AbstractContextManager[None]:
        return self._rw.reading()

    def upsert(self, points: Sequence[PointRecord]) -> None:
        self.write(points, ())

    def delete(self, ids: Sequence[str]) -> None:
        self.write((), ids)

    def write(self, upsert: Sequence[PointRecord], delete: Sequence[str]) -> None:
        known = self._require()
        with_instance = INSTANCE_VECTOR in self._dense_of(known)
        structs = []
        for p in upsert:
            indices, values = as_pair(known.bm25.document(p.text))
            vectors: dict[str, Any] = {
                IMAGE_VECTOR: np.asarray(p.image_vector, dtype=np.float32).tolist(),
                TEXT_VECTOR: np.asarray(p.text_vector, dtype=np.float32).tolist(),
                BM25_VECTOR: models.SparseVector(indices=indices, values=values),
            }
            if with_instance:
                if p.instance_vector is None:
                    raise ValueError(f"point {p.id}: this collection needs an instance vector")
                vectors[INSTANCE_VECTOR] = np.asarray(p.instance_vector, np.float32).tolist()
            payload = with_blocks(p.id, p.payload, known.graph_blocks)
            structs.append(models.PointStruct(id=p.id, vector=vectors, payload=payload))
        operations: list[Any] = []
        if structs:
            operations.append(models.UpsertOperation(upsert=models.PointsList(points=structs)))
        if delete:
            ids = models.PointIdsList(points=list(delete))
            operations.append(models.DeleteOperation(delete=ids))
        if not operations:
            return
        # One request, applied in order, acknowledged once both are applied.
        with self._write_lock, self._rw.writing(), self._calls("be written"):
            self._client.batch_update_points(known.name, operations, wait=True)
        self._size = None
        self._matches = {}

    def build_index(self) -> bool:
        """Nothing to start: the server's optimizer builds HNSW by itself once a segment passes
        the indexing threshold (``index_status`` tells how far it is)."""
        return False

    # -- reads ---------------------------------------------------------------------------------

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        known = self._require()
        requests = [self._request(q, known) for q in queries]
        sent = [r for r in requests if r is not None]
        answers: Iterator[models.QueryResponse] = iter([])
        if sent:
            with self._calls("be searched"):
                answers = iter(self._client.query_batch_points(known.name, sent))
        return [to_hits(next(answers).points) if r is not None else [] for r in requests]

    def _request(self, query: StoreQuery, known: _Collection) -> models.QueryRequest | None:
        """The server's request for ``query``; None when it cannot match anything."""
        params = None
        if isinstance(query, DenseQuery):
            have = self._dense_of(known)
            if query.using not in have:
                raise ValueError(f"unknown dense vector {query.using!r}; have {', '.join(have)}")
            nearest: Any = np.asarray(query.vector, dtype=np.float32).tolist()
            using = query.using
            rescore = None
            if self.options.scalar_quantization:
                # Candidates from the int8 copies, scores from the full vectors: the same
                # scores as without quantization, for the floors and fusion that rely on them.
                rescore = models.QuantizationSearchParams(rescore=True)
            hnsw = self.options.hnsw
            points = self._points(known)
            ef = query.ef if query.ef is not None else hnsw.beam(points)
            share = hnsw.acorn(points)
            acorn = None
            if share is not None:
                acorn = models.AcornSearchParams(enable=True, max_selectivity=share)
            exact = self._scans_in(known, query.flt, using)
            params = models.SearchParams(hnsw_ef=ef, exact=exact, quantization=rescore, acorn=acorn)
        else:
            indices, values = as_pair(known.bm25.query(query.text))
            if not indices:  # only stopwords or punctuation: nothing can match
                return None
            nearest = models.SparseVector(indices=indices, values=values)
            using = BM25_VECTOR
        return models.QueryRequest(
            query=models.NearestQuery(nearest=nearest),
            using=using,
            filter=server_filter(query.flt),
            params=params,
            score_threshold=query.min_score,
            limit=query.limit,
            with_payload=payload_selector(query.with_payload),
            with_vector=False,
        )

    def retrieve(self, ids: Sequence[str]) -> list[Hit]:
        known = self._require()
        with self._calls("be read"):
            records = self._client.retrieve(
                known.name, list(ids), with_payload=True, with_vectors=False
            )
        return to_hits(records)

    def vectors(
        self, ids: Sequence[str], using: Sequence[str] | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        known = self._require()
        names = tuple(using) if using is not None else self._dense_of(known)
        with self._calls("be read"):
            records = self._client.retrieve(
                known.name, list(ids), with_payload=False, with_vectors=list(names)
            )
        out: dict[str, dict[str, np.ndarray]] = {}
        for r in records:
            named = r.vector if isinstance(r.vector, dict) else {}
            out[str(r.id)] = {
                name: np.asarray(named[name], dtype=np.float32) for name in names if name in named
            }
        return out

    def product_points(self, product_id: str) -> list[Hit]:
        known = self._load()
        if known is None:
            return []
        with self._calls("be read"):
            records, _ = self._client.scroll(
                known.name,
                scroll_filter=product_filter(product_id),
                limit=MAX_PRODUCT_POINTS,
                with_payload=True,
            )
        return to_hits(records)

    def scan(self, fields: Sequence[str], page: int = PAGE) -> Iterator[Hit]:
        known = self._load()
        if known is None:
            return
        offset: Any = None
        while True:
            with self._calls("be read"):
                records, offset = self._client.scroll(
                    known.name, offset=offset, limit=page, with_payload=list(fields)
                )
            yield from to_hits(records)
            if offset is None:
                return

    def facet(self, key: str, ids: Sequence[str], limit: int = 1_000) -> list[tuple[str, int]]:
        known = self._load()
        if known is None or not ids:
            return []
        with self._calls("be counted"):
            found = self._client.facet(
                known.name, key, facet_filter=ids_filter(ids), limit=limit, exact=True
            )
        return [(str(h.value), int(h.count)) for h in found.hits]

    def count(self, flt: SearchFilter | None = None) -> int:
        known = self._load()
        if known is None:
            return 0
        with self._calls("be counted"):
            return int(
                self._client.count(known.name, count_filter=server_filter(flt), exact=True).count
            )

    def _collection_info(self) -> models.CollectionInfo | None:
        known = self._load()
        if known is None:
            return None
        with self._calls("be read"):
            return self._client.get_collection(known.name)

    def index_status(self) -> IndexStatus:
        info = self._collection_info()
        meta = self._known.meta if self._known is not None else {}
        dim = int(meta.get("dim") or 1)
        threshold_kb = self.options.indexing_threshold_kb
        if info is None:
            return IndexStatus.of(0, 0, len(DENSE_VECTORS), dim, threshold_kb)
        optimizer = info.config.optimizer_config.indexing_threshold
        return IndexStatus.of(
            int(info.points_count or 0),
            int(info.indexed_vectors_count or 0),
            len(self.dense_vectors()),
            dim,
            int(optimizer) if optimizer is not None and not self.local else threshold_kb,
        )

    def info(self) -> StoreInfo:
        """What ``/healthz`` shows; a server that does not answer shows as 0 points and the
        reason, not as an error (liveness must not fail because the database is away)."""
        extra: dict[str, Any] = {
            ("path" if self.local else "url"): self.where,
            "collection": self.collection,
        }
        try:
            info = self._collection_info()
        except StoreUnavailableError as exc:
            return StoreInfo(self.backend, 0, 0, 0, None, None, {**extra, "error": str(exc)})
        known = self._known
        meta = known.meta if known is not None else {}
        if info is None:
            return StoreInfo(self.backend, 0, 0, 0, None, None, extra)
        if known is not None and known.name != self.collection:
            extra = {**extra, "collection": known.name, "alias": self.collection}
        params = info.config.params
        return StoreInfo(
            backend=self.backend,
            points=int(info.points_count or 0),
            indexed_vectors=int(info.indexed_vectors_count or 0),
            segments=int(info.segments_count or 0),
            dim=meta.get("dim"),
            model_id=meta.get("model_id"),
            extra={
                **extra,
                "format": meta.get("format"),
                "bm25_avg_len": meta.get("bm25_avg_len"),
                "instance_dim": int(meta.get("instance_dim", 0)),
                "created_at": meta.get("created_at"),
                "bundle": meta.get("bundle"),
                "shard_number": params.shard_number,
                "replication_factor": params.replication_factor,
                "scalar_quantization": info.config.quantization_config is not None,
                "index": self.index_status().describe(),
            },
        )


def alias_target(aliases: Sequence[models.AliasDescription], alias: str) -> str | None:
    """The collection ``alias`` points at, among ``aliases``; None when it is no alias."""
    return next((a.collection_name for a in aliases if a.alias_name == alias), None)
