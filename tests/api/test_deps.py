"""The routes' dependencies run on the event loop: none is a plain function, which FastAPI would
run in its thread pool (a thread hop each, per request)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

import app.api.routes


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _routes() -> list[APIRoute]:
    """Every route of the routers in ``app.api.routes`` (one per resource)."""
    out: list[APIRoute] = []
    for info in pkgutil.iter_modules(app.api.routes.__path__):
        module = importlib.import_module(f"app.api.routes.{info.name}")
        for router in vars(module).values():
            if isinstance(router, APIRouter):
                out += [r for r in router.routes if isinstance(r, APIRoute)]
    return out


def test_no_route_resolves_a_dependency_in_the_thread_pool() -> None:
    routes = _routes()
    # the router-wide rate limit counts too: the search routes must show it
    search = [r for r in routes if r.path == "/v1/search"]
    assert search and all(r.dependant.dependencies for r in search)
    plain = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)}"
            for route in routes
            for call in _calls(route.dependant)
            if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
        }
    )
    assert plain == []
