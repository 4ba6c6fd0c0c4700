"""Builds the long-lived parts (encoder, store, search service) from ``Settings``.

The CLI and the API both start here, so they always run the same code with the same config.
``open_components`` opens what a search needs and closes it again, for both of them: the live
collection with the model that made it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.embedding import BundleError, Encoder, ProviderError, load_manifest
from app.evaluation.judgements import JudgementStore
from app.evaluation.querysets import QuerySetStore
from app.profiles import ProfileRepository
from app.search.service import SearchService
from app.settings import Settings
from app.store import VectorStore
from app.store.collections import StoreCollections

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from app.store.server import ServerOptions


class SetupError(RuntimeError):
    """Something missing before snapshop can run; the message says what to do."""


def load_encoder(settings: Settings, parallel_towers: bool = False) -> Encoder:
    """The configured encoder. ``parallel_towers`` (ingest): its image and text towers run at
    the same time, each on half the thread budget."""
    bundle = settings.model_dir
    if not (bundle / "manifest.json").is_file():
        raise SetupError(
            f"no model bundle at {bundle}: create one with "
            f"`snapshop model export --arch ViT-B-32 --pretrained none --out {bundle}` "
            "or point SNAPSHOP_MODEL / --model at an existing bundle"
        )
    try:
        return Encoder(
            bundle,
            device=settings.device,
            threads=settings.threads,
            max_batch=settings.batch_size,
            concurrent_runs=settings.model_runs,
            spinning=settings.thread_spinning,
            parallel_towers=parallel_towers,
        )
    except (BundleError, ProviderError) as exc:
        raise SetupError(str(exc)) from exc


def _server_options(settings: Settings, collection: str | None = None) -> ServerOptions:
    from app.store.server import ServerOptions

    return ServerOptions(
        collection=collection or settings.qdrant_collection,
        shard_number=settings.qdrant_shard_number,
        replication_factor=settings.qdrant_replication_factor,
        on_disk_payload=settings.qdrant_on_disk_payload,
        scalar_quantization=settings.qdrant_scalar_quantization,
        indexing_threshold_kb=settings.index_threshold_kb,
        hnsw=settings.hnsw,
    )


def _server_client(settings: Settings) -> tuple[QdrantClient, str]:
    """A client of the configured server (or local-mode folder), and where it points."""
    from app.store.server import path_client, url_client

    if settings.qdrant_path is not None:
        return path_client(settings.qdrant_path), str(settings.qdrant_path)
    assert settings.qdrant_url is not None
    key = settings.qdrant_api_key
    client = url_client(
        settings.qdrant_url,
        api_key=key.get_secret_value() if key is not None else None,
        prefer_grpc=settings.qdrant_prefer_grpc,
        grpc_port=settings.qdrant_grpc_port,
        timeout_s=settings.qdrant_timeout_s,
    )
    return client, settings.qdrant_url


def uses_server(settings: Settings) -> bool:
    """Whether the store is a Qdrant server's (or local mode's) rather than the embedded one."""
    return bool(settings.qdrant_url) or settings.qdrant_path is not None


def open_store(settings: Settings, collection: str | None = None) -> VectorStore:
    """The live collection of the store the settings name: a Qdrant server's (``qdrant_url``),
    qdrant-client's local mode (``qdrant_path``), else the embedded engine under
    ``<data-dir>/qdrant``. The store owns what it opened; closing it releases everything.

    ``collection``: another alias on the same server (the embedded engine has one location).
    """
    if uses_server(settings):
        from app.store.server import QdrantServerStore

        client, where = _server_client(settings)
        options = _server_options(settings, collection)
        return QdrantServerStore(client, options, where, local=settings.qdrant_path is not None)
    return open_collections(settings).open()


def open_collections(settings: Settings, serving: bool = False) -> StoreCollections:
    """Every collection of the configured store and the live one (model swaps). Stores opened
    through it share its client; close them, then it. ``serving``: for the API server, whose
    embedded stores build their index in a child process (searches go on meanwhile)."""
    if uses_server(settings):
        from app.store.server_collections import ServerCollections

        client, where = _server_client(settings)
        local = settings.qdrant_path is not None
        return ServerCollections(client, _server_options(settings), where, local=local)
    from app.store.edge_collections import EdgeCollections

    return EdgeCollections(
        settings.store_dir,
        indexing_threshold_kb=settings.index_threshold_kb,
        hnsw=settings.hnsw,
        quantization="int8" if settings.qdrant_scalar_quantization else None,
        index_apart=serving,
    )


class Models:
    """Model bundles, loaded by folder, or found for the model id a collection records.

    A server switching to another collection (a model swap) must embed queries with the model
    that made its vectors: the bundle the collection was built with, else the configured one
    or any under ``<data-dir>/models`` holding that model id.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def model_id_of(self, bundle: Path) -> str | None:
        """The model id of the bundle in ``bundle``; None when it holds none."""
        try:
            return load_manifest(bundle, verify=False).model_id
        except BundleError:
            return None

    def load(self, bundle: Path) -> Encoder:
        return load_encoder(self.settings.model_copy(update={"model": bundle}))

    def find(self, model_id: str, recorded: str | None) -> Path:
        """The bundle of ``model_id``; ``recorded``: where its collection says it was."""
        models_dir = self.settings.models_dir
        candidates = [Path(recorded)] if recorded else []
        candidates.append(self.settings.model_dir)
        if models_dir.is_dir():
            candidates += sorted(p for p in models_dir.iterdir() if p.is_dir())
        for bundle in candidates:
            if self.model_id_of(bundle) == model_id:
                return bundle
        raise SetupError(
            f"no model bundle of {model_id} found (its collection names "
            f"{recorded or 'no bundle'}; also looked at SNAPSHOP_MODEL and under {models_dir}): "
            "put the bundle at one of those places"
        )


def scratch_stores(settings: Settings) -> Callable[[Path, str], VectorStore]:
    """Fresh throw-away stores of the configured backend, for benchmarks: ``(folder, name)`` ->
    a store under ``folder`` (embedded, local mode) or collection ``<collection>-<name>`` on the
    server. The caller drops each when done."""

    def make(folder: Path, name: str) -> VectorStore:
        if settings.qdrant_url:
            return open_store(settings, f"{settings.qdrant_collection}-{name}")
        if settings.qdrant_path is not None:
            return open_store(settings.model_copy(update={"qdrant_path": folder / name}))
        return open_store(settings.model_copy(update={"data_dir": folder / name}))

    return make


def open_profiles(settings: Settings) -> ProfileRepository:
    return ProfileRepository(settings.profiles_path)


def open_judgements(settings: Settings) -> JudgementStore:
    return JudgementStore(settings.judgements_path)


def open_querysets(settings: Settings) -> QuerySetStore:
    return QuerySetStore(settings.querysets_path)


def build_service(
    settings: Settings,
    store: VectorStore,
    encoder: Encoder,
    profiles: ProfileRepository | None = None,
    *,
    micro_batch: bool | None = None,
) -> SearchService:
    """The service as configured; ``micro_batch`` overrides the setting (the bench runs both)."""
    return SearchService(
        store,
        encoder,
        profiles=profiles if profiles is not None else open_profiles(settings),
        rrf_k=settings.rrf_k,
        max_k=settings.max_k,
        max_window=settings.max_window,
        micro_batch=settings.micro_batch if micro_batch is None else micro_batch,
        max_decodes=settings.max_decodes,
        max_pixels=int(settings.max_image_megapixels * 1_000_000),
    )


@dataclass(frozen=True)
class Components:
    """The parts a search runs on, opened together by ``open_components``."""

    encoder: Encoder
    store: VectorStore
    profiles: ProfileRepository
    service: SearchService


def live_bundle(settings: Settings, collections: StoreCollections) -> Path:
    """The bundle of the live collection's model: SNAPSHOP_MODEL when it holds that model (or
    no collection exists yet), else the bundle the collection was built with (a swap made it
    live) or one under ``<data-dir>/models`` holding its model."""
    name = collections.live()
    meta = collections.meta(name) if name is not None else None
    model = meta.get("model_id") if meta else None
    models = Models(settings)
    if model is None or models.model_id_of(settings.model_dir) == model:
        return settings.model_dir
    return models.find(str(model), meta.get("bundle") if meta else None)


@contextmanager
def open_components(
    settings: Settings, encoder: Encoder | None = None, *, micro_batch: bool | None = None
) -> Iterator[Components]:
    """Encoder (unless given: the live collection's model), the live collection's store,
    profiles and service; closed in reverse order on exit."""
    with ExitStack() as stack:
        collections = open_collections(settings)
        stack.callback(collections.close)
        if encoder is None:
            bundle = live_bundle(settings, collections)
            encoder = load_encoder(settings.model_copy(update={"model": bundle}))
        store = collections.open()
        stack.callback(store.close)
        profiles = open_profiles(settings)
        stack.callback(profiles.close)
        service = build_service(settings, store, encoder, profiles, micro_batch=micro_batch)
        stack.callback(service.close)
        yield Components(encoder, store, profiles, service)
