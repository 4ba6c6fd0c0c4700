"""What searches run on, as one generation swapped whole: model changes without downtime.

A generation is an encoder, the store over one collection and the search service over both.
Every request leases the current generation for its whole run (``Live.lease``); a swap builds
the next generation beside it, installs it with one reference assignment, and closes the old
one when its last lease ends. So no request embeds its query with one model and searches the
collection of another, and none finds its store closed under it.

The live collection is read again every ``SNAPSHOP_SWAP_POLL_S`` seconds, so a swap made
elsewhere (``snapshop collections swap``, another API process) is followed within that time;
until then this process answers from the old collection, which is kept until an operator
drops it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.api.probe import ModelProbe
from app.components import Models, SetupError, build_service
from app.embedding import Encoder
from app.observability.metrics import Metrics
from app.profiles import ProfileRepository
from app.search.service import SearchService
from app.settings import Settings
from app.store import StoreError, VectorStore
from app.store.collections import CollectionInfo, StoreCollections, check_swap_target
from app.store.errors import CollectionRefusedError

log = logging.getLogger(__name__)

# How long ``close`` waits for requests still holding a generation at shutdown.
CLOSE_WAIT_S = 30.0


@dataclass(eq=False)
class Generation:
    """One encoder with the collection its model made, and the service over both."""

    collection: str | None  # None: no collection yet; the store takes the live one once made
    encoder: Encoder
    bundle: Path | None  # where ``encoder`` was loaded from (recorded with new collections)
    store: VectorStore
    service: SearchService
    probe: ModelProbe
    leases: int = 0  # requests and syncs using it now (guarded by ``Live._cond``)


@dataclass(frozen=True)
class SyncTarget:
    """Where a sync writes: the store, the encoder that embeds for it, and its bundle."""

    store: VectorStore
    encoder: Encoder
    bundle: Path | None
    collection: str | None


class Live:
    """The current generation, swapped whole; old ones closed once their leases end."""

    def __init__(
        self,
        settings: Settings,
        collections: StoreCollections,
        models: Models,
        profiles: ProfileRepository,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.collections = collections
        self.models = models
        self.profiles = profiles
        self.metrics = metrics
        # Why a swap or a drop must wait now (a sync running), or None; set by the app.
        self.busy: Callable[[], str | None] = lambda: None
        self._cond = threading.Condition()
        self._switching = threading.Lock()  # one swap (or refresh, or drop) at a time
        self._current: Generation | None = None
        self._retiring: list[Generation] = []
        self._building: dict[str, VectorStore] = {}  # collections a sync builds now
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the current generation --------------------------------------------------------------

    def start(self, encoder: Encoder, bundle: Path | None) -> Generation:
        """The first generation: the live collection with its own model. ``encoder`` (loaded
        from ``bundle``, SNAPSHOP_MODEL) serves when the collection is of its model, or when
        there is none yet; then the watcher starts."""
        name: str | None = None
        try:
            name = self.collections.live()
            meta = self.collections.meta(name) if name is not None else None
        except StoreError as exc:  # a server down at startup: /readyz says so meanwhile
            log.warning("cannot read the live collection yet (%s); following it once it is", exc)
            name, meta = None, None
        model = meta.get("model_id") if meta else None
        if model is not None and model != encoder.model_id:
            try:
                bundle = self.models.find(model, meta.get("bundle") if meta else None)
                encoder = self.models.load(bundle)
                log.info("serving %s, the live collection's model (not SNAPSHOP_MODEL's)", model)
            except SetupError as exc:
                log.error(
                    "the live collection %s holds vectors of %s, but serving %s: %s",
                    name,
                    model,
                    encoder.model_id,
                    exc,
                )
        self._install(self._build(name, encoder, bundle))
        if self.settings.swap_poll_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="swap-watch", daemon=True)
            self._watcher.start()
        return self.current

    @property
    def current(self) -> Generation:
        gen = self._current
        if gen is None:
            raise RuntimeError("no generation: Live.start was not called")
        return gen

    @contextmanager
    def lease(self) -> Iterator[Generation]:
        """The current generation, kept open until the block ends (a swap meanwhile serves new
        requests from the next one)."""
        with self._cond:
            gen = self.current
            gen.leases += 1
        try:
            yield gen
        finally:
            with self._cond:
                gen.leases -= 1
                if gen.leases == 0:
                    self._cond.notify_all()

    def in_use(self) -> dict[str, VectorStore]:
        """Collections this process holds open, by name: served, draining, or being built."""
        with self._cond:
            gens = [self.current, *self._retiring]
            held = {g.collection: g.store for g in gens if g.collection is not None}
            return {**held, **self._building}

    # -- swaps ---------------------------------------------------------------------------------

    def swap(self, name: str) -> tuple[Generation, str | None]:
        """Make collection ``name`` live, in the store and here; (its generation, the collection
        live before). Refused while a sync runs, or for an empty collection."""
        with self._switching:
            reason = self.busy()
            if reason is not None:
                raise CollectionRefusedError(f"{reason}; swap once it has finished")
            if name == self.current.collection:
                return self.current, name
            gen = self._next(name, require_points=True)
            try:
                previous = self.collections.swap(name)
            except BaseException:
                self._close(gen)
                raise
            self._install(gen)
            return gen, previous

    def refresh(self) -> bool:
        """Follow the live collection if another process moved it; whether this switched."""
        with self._switching:
            name = self.collections.live()
            if name is None or name == self.current.collection:
                return False
            self._install(self._next(name, require_points=False))
            return True

    def drop(self, name: str) -> None:
        """Delete collection ``name``: never the live one, one in use here, or during a sync."""
        with self._switching:
            reason = self.busy()
            if reason is not None:
                raise CollectionRefusedError(f"{reason}; drop once it has finished")
            if name == self.current.collection:
                raise CollectionRefusedError(
                    f"{name!r} is the live collection: swap another one in first"
                )
            if name in self.in_use():
                raise CollectionRefusedError(
                    f"{name!r} is in use by this server (served, or its last requests still "
                    "running): retry in a moment"
                )
            self.collections.drop(name)

    def list(self) -> list[CollectionInfo]:
        return self.collections.list(self.in_use())

    @contextmanager
    def building(self, bundle: Path) -> Iterator[SyncTarget]:
        """The collection of the model in ``bundle``, opened for a sync that builds it beside
        the live one (``--new-collection``)."""
        encoder = self.models.load(bundle)
        name = self.collections.collection_for(encoder.model_id)
        live = self.current
        if encoder.model_id == live.encoder.model_id:
            raise CollectionRefusedError(
                f"the live collection already holds model {encoder.model_id}: sync it without "
                "--new-collection"
            )
        with self._switching:
            if name in self.in_use():
                raise CollectionRefusedError(f"the collection {name!r} is in use by this server")
            store = self.collections.open(name)
            with self._cond:
                self._building[name] = store
        try:
            yield SyncTarget(store, encoder, bundle, name)
        finally:
            with self._cond:
                del self._building[name]
            store.close()

    def _next(self, name: str, require_points: bool) -> Generation:
        """The generation of collection ``name``, with its model's encoder."""
        if name in self.in_use():
            raise CollectionRefusedError(
                f"the collection {name!r} is still in use here (its last requests, or a "
                "build): retry in a moment"
            )
        meta = check_swap_target(name, self.collections.meta(name), self.collections.where)
        model = str(meta["model_id"])
        now = self.current
        if model == now.encoder.model_id:
            encoder, bundle = now.encoder, now.bundle
        else:
            bundle = self.models.find(model, meta.get("bundle"))
            encoder = self.models.load(bundle)
            if encoder.model_id != model:
                raise SetupError(f"the bundle {bundle} holds {encoder.model_id}, not {model}")
        gen = self._build(name, encoder, bundle)
        try:
            if require_points and gen.store.count() == 0:
                raise CollectionRefusedError(
                    f"the collection {name!r} holds no points: build it first "
                    "(`snapshop ingest CATALOG --new-collection`)"
                )
        except BaseException:
            self._close(gen)
            raise
        return gen

    def _build(self, name: str | None, encoder: Encoder, bundle: Path | None) -> Generation:
        store = self.collections.open(name)
        try:
            service = build_service(self.settings, store, encoder, self.profiles)
        except BaseException:
            store.close()
            raise
        service.observe(self.metrics)
        # Warmed beside serving: a search arriving first waits for the same load.
        threading.Thread(target=store.warm, name="store-warm", daemon=True).start()
        return Generation(name, encoder, bundle, store, service, ModelProbe(encoder))

    def _install(self, gen: Generation) -> None:
        with self._cond:
            old, self._current = self._current, gen
            if old is not None:
                self._retiring.append(old)
        self.metrics.watch(gen.store, gen.encoder)
        if old is None:
            return
        log.info(
            "serving collection %s (model %s); %s (model %s) closes once its requests end",
            gen.collection,
            gen.encoder.model_id,
            old.collection,
            old.encoder.model_id,
        )
        threading.Thread(target=self._retire, args=(old,), name="retire", daemon=True).start()

    def _retire(self, old: Generation, wait_s: float | None = None) -> None:
        """Close ``old`` once no request or sync holds it (``wait_s``: at most that long)."""
        with self._cond:
            self._cond.wait_for(lambda: old.leases == 0, timeout=wait_s)
        self._close(old)
        with self._cond:
            if old in self._retiring:
                self._retiring.remove(old)
            self._cond.notify_all()

    @staticmethod
    def _close(gen: Generation) -> None:
        gen.service.close()
        gen.store.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.swap_poll_s):
            try:
                self.refresh()
            except (StoreError, SetupError) as exc:
                # The old collection keeps serving; the next poll tries again.
                log.warning("cannot follow the live collection: %s", exc)
            except Exception:
                log.exception("following the live collection failed")

    def close(self) -> None:
        """Stop following swaps; close every generation once its requests end."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=CLOSE_WAIT_S)
        with self._switching:
            with self._cond:
                gen, self._current = self._current, None
            if gen is not None:
                self._retire(gen, wait_s=CLOSE_WAIT_S)
            with self._cond:  # generations swapped out before, still draining
                self._cond.wait_for(lambda: not self._retiring, timeout=CLOSE_WAIT_S)
