"""Uploads and load: body caps before anything is spooled, a pixel cap and draft decoding for
query photos, bounded decodes, a concurrency limit and a timeout; random bodies never get a 5xx."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.api.main import create_app
from app.api.middleware import BodyLimitMiddleware, ConcurrencyLimitMiddleware
from app.embedding import preprocess
from app.embedding.preprocess import ImageTooLargeError, load_image
from app.search.encode import QueryEmbedder
from app.settings import Settings
from tests.fakes import FakeEncoder

MAX_UPLOAD_MB = 0.25


@pytest.fixture(scope="module")
def client(fake_ingested_dir: Path, fake_encoder: FakeEncoder) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=fake_ingested_dir, max_upload_mb=MAX_UPLOAD_MB, max_image_megapixels=0.05
    )
    with TestClient(create_app(settings, encoder=fake_encoder)) as c:  # type: ignore[arg-type]
        yield c


def _jpeg(size: tuple[int, int], quality: int = 30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 30)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds almost no data (a "bomb")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# -- request bodies ------------------------------------------------------------------------


def test_a_declared_oversized_upload_is_refused_before_it_is_read(client: TestClient) -> None:
    big = b"\0" * int(MAX_UPLOAD_MB * 1024 * 1024 * 2)
    resp = client.post("/v1/search", files={"image": ("big.jpg", big, "image/jpeg")})
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert "SNAPSHOP_MAX_UPLOAD_MB" in resp.json()["detail"]


def test_an_undeclared_oversized_body_is_cut_off_while_streaming(client: TestClient) -> None:
    chunk = b"x" * 65_536

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(20):
            yield chunk

    resp = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text
    assert resp.json()["status"] == 413


def test_the_body_limit_stops_the_app_reading_past_it() -> None:
    """At the ASGI level: the app sees at most one chunk past the limit, then the 413."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        nonlocal read
        while True:
            message = await receive()
            read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    chunks = [{"type": "http.request", "body": b"a" * 1000, "more_body": True}] * 100

    async def receive() -> dict:
        return chunks.pop()

    async def send(message: dict) -> None:
        sent.append(message)

    guarded = BodyLimitMiddleware(app, default=5000, limits={})  # type: ignore[arg-type]
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(guarded(scope, receive, send))
    assert read <= 6000
    assert sent[0]["status"] == 413
    assert len(chunks) >= 90  # the rest was never pulled from the client


# -- query photos --------------------------------------------------------------------------


def test_a_photo_over_the_pixel_cap_is_a_413(client: TestClient) -> None:
    resp = client.post("/v1/search", files={"image": ("p.jpg", _jpeg((400, 300)), "image/jpeg")})
    assert resp.status_code == 413, resp.text
    assert "0.05 MP" in resp.json()["detail"] and "400x300" in resp.json()["detail"]
    ok = client.post("/v1/search", files={"image": ("p.jpg", _jpeg((200, 200)), "image/jpeg")})
    assert ok.status_code == 200, ok.text


def test_pixels_are_checked_from_the_header_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decode(self: Image.Image) -> None:
        raise AssertionError("decoded although the header was over the cap")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    with pytest.raises(ImageTooLargeError, match="10000x8000 pixels, more than the 40 MP"):
        load_image(_png_header(10_000, 8_000), max_pixels=40_000_000)
    # past PIL's own bomb guard, refused as it is opened: too large as well, not "undecodable"
    with pytest.raises(ImageTooLargeError):
        load_image(_png_header(100_000, 100_000), max_pixels=40_000_000)


def test_a_jpeg_is_decoded_at_the_size_the_model_needs() -> None:
    photo = _jpeg((1600, 1200))
    assert load_image(photo).size == (1600, 1200)
    small = load_image(photo, draft=(448, 448))
    assert small.size == (800, 600)  # the DCT's 1/2 scale: still at least 448 each way
    assert min(load_image(photo, draft=(150, 150)).size) >= 150


def test_decodes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    running = peak = 0
    lock = threading.Lock()
    real = preprocess.load_image

    def slow_load(data: bytes, **kwargs: Any) -> Image.Image:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return real(data, **kwargs)

    monkeypatch.setattr("app.search.encode.load_image", slow_load)
    embedder = QueryEmbedder(FakeEncoder(), max_decodes=2)  # type: ignore[arg-type]
    photo = _jpeg((64, 64))
    threads = [threading.Thread(target=embedder.photo, args=(photo, None, {})) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2


# -- load ----------------------------------------------------------------------------------


def test_a_full_server_answers_503_with_retry_after() -> None:
    async def main() -> list[dict[str, Any]]:
        gate = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def app(scope: dict, receive: Any, send: Any) -> None:
            await gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        async def send(message: dict) -> None:
            sent.append(message)

        limited = ConcurrencyLimitMiddleware(app, limit=2, exempt=("/healthz",))  # type: ignore[arg-type]
        scope = {"type": "http", "method": "GET", "path": "/v1/search", "headers": []}
        first = [asyncio.create_task(limited(scope, receive, send)) for _ in range(2)]
        await asyncio.sleep(0.01)
        await limited(scope, receive, send)  # the third: answered at once
        health = asyncio.create_task(limited({**scope, "path": "/healthz"}, receive, send))
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*first, health)
        return sent

    sent = asyncio.run(main())
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert starts[0]["status"] == 503
    assert (b"retry-after", b"1") in starts[0]["headers"]
    assert [m["status"] for m in starts[1:]] == [200, 200, 200]  # health was not turned away


def test_a_search_over_the_time_limit_is_a_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = client.app.state  # type: ignore[attr-defined]
    monkeypatch.setattr(state.settings, "request_timeout_s", 0.2)
    service = state.live.current.service
    real = service.search

    def stuck(query: Any) -> Any:
        time.sleep(1.0)
        return real(query)

    monkeypatch.setattr(service, "search", stuck)
    started = time.perf_counter()
    resp = client.get("/v1/search", params={"q": "shirt"})
    assert time.perf_counter() - started < 0.9
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "5"
    assert "SNAPSHOP_REQUEST_TIMEOUT_S" in resp.json()["detail"]


# -- property: whatever arrives, never a 5xx ---------------------------------------------------

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "image/jpeg",
        "text/plain",
        "",
    ]
)
FIELD_NAMES = st.sampled_from(
    ["image", "q", "k", "offset", "filters", "crop", "fusion", "category", "facets", "zzz"]
)
FIELD_VALUES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60).map(str.encode),
    st.sampled_from([b'{"category": " / "}', b'{"x0":0,"y0":0,"x1":2,"y1":1}', b"-1", b"1e9"]),
)
PHOTOS = st.one_of(
    st.binary(max_size=2_000),
    st.builds(
        lambda w, h, q: _jpeg((w, h), q),
        st.integers(1, 300),
        st.integers(1, 300),
        st.integers(1, 95),
    ),
    st.builds(lambda raw, cut: raw[:cut], st.just(_jpeg((120, 90))), st.integers(0, 2_000)),
    st.builds(_png_header, st.integers(1, 10**6), st.integers(1, 10**6)),
)
SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def _assert_no_5xx(resp: Any) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["detail"]


def test_random_bytes_never_get_a_5xx(client: TestClient) -> None:
    sent: list[int] = []

    @SETTINGS
    @given(body=st.binary(max_size=4_000), ctype=CONTENT_TYPES)
    def run(body: bytes, ctype: str) -> None:
        headers = {"content-type": ctype} if ctype else {}
        resp = client.post("/v1/search", content=body, headers=headers)
        sent.append(resp.status_code)
        _assert_no_5xx(resp)

    run()
    print(f"\nrandom bodies: {len(sent)} sent, statuses {sorted(set(sent))}")
    assert len(sent) >= 100


def test_random_multipart_bodies_never_get_a_5xx(client: TestClient) -> None:
    sent: list[int] = []

    @SETTINGS
    @given(
        fields=st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=6),
        photo=st.one_of(st.none(), PHOTOS),
    )
    def run(fields: list[tuple[str, bytes]], photo: bytes | None) -> None:
        files: list[tuple[str, Any]] = [(name, (None, value)) for name, value in fields]
        if photo is not None:
            files.append(("image", ("photo.jpg", photo, "image/jpeg")))
        if not files:
            files = [("q", (None, b""))]
        resp = client.post("/v1/search", files=files)
        sent.append(resp.status_code)
        _assert_no_5xx(resp)

    run()
    print(f"\nrandom multipart bodies: {len(sent)} sent, statuses {sorted(set(sent))}")
    assert len(sent) >= 100
