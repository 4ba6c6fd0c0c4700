"""A generated corpus of bad rows and images: each quarantined with its reason, the rest ingested.

Two catalogs (one CSV, one JSONL) hold 31 kinds of broken input between good products, including
images that are awkward but valid (CMYK, 16-bit, palette, alpha, EXIF-rotated, animated GIF, WebP)
and must be ingested correctly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.embedding import Encoder
from app.store import EdgeStore
from ingestion.pipeline import IngestReport, ingest_catalog
from ingestion.quarantine import write_quarantine

HEADER = ["product_id", "title", "category", "price", "color", "year", "description", "image_files"]


def _pattern(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """A distinctive, non-symmetric picture (so a rotation changes its embedding)."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    pixels = np.concatenate([x + 0 * y, y + 0 * x, (x * y / 255) % 255], axis=2)
    pixels[: h // 3, : w // 4] = rng.integers(0, 255, size=3)  # a block in one corner
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _good_images(images: Path) -> dict[str, str]:
    """Valid but awkward files; returns product id -> file name (relative to the folder)."""
    base = _pattern()
    base.convert("CMYK").save(images / "cmyk.jpg")
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).save(
        images / "deep.png"
    )  # 16-bit greyscale
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(images / "palette.png")
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(images / "alpha.png")
    base.convert("LA").save(images / "la.png")
    base.convert("L").save(images / "grey.jpg")
    frames = [_pattern(seed=i) for i in range(3)]
    frames[0].save(images / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    base.save(images / "photo.webp")
    base.save(images / "really_a_png.jpg", format="PNG")  # wrong extension, valid image
    # Stored sideways with EXIF orientation 6 ("rotate 90 clockwise to display").
    sideways = _pattern((80, 40), seed=7).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(images / "exif.jpg", exif=exif.tobytes(), quality=95)
    _pattern(seed=3).save(images / "plain.jpg")
    (images.parent / "photos").mkdir()
    _pattern(seed=4).save(images.parent / "photos" / "outside_images_dir.jpg")
    return {
        "g_cmyk": "cmyk.jpg",
        "g_16bit": "deep.png",
        "g_palette": "palette.png",
        "g_alpha": "alpha.png",
        "g_la": "la.png",
        "g_grey": "grey.jpg",
        "g_gif": "anim.gif",
        "g_webp": "photo.webp",
        "g_pngjpg": "really_a_png.jpg",
        "g_exif": "exif.jpg",
        "g_sub": "photos/outside_images_dir.jpg",
    }


def _bad_images(images: Path) -> dict[str, tuple[str, str]]:
    """Broken files; product id -> (file name, expected reason pattern)."""
    (images / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    _pattern((200, 200), seed=5).save(buf, format="JPEG", quality=95)
    (images / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (images / "text.jpg").write_text("<html><body>404 not found</body></html>")
    png = io.BytesIO()
    _pattern().save(png, format="PNG")
    raw = bytearray(png.getvalue())
    raw[60:90] = b"\x00" * 30  # inside the IDAT stream: the header parses, the data does not
    (images / "corrupt.png").write_bytes(bytes(raw))
    Image.new("1", (9000, 9000)).save(images / "bomb.png")  # 81 MP, a few KB on disk
    Image.new("RGB", (4, 4), (255, 0, 0)).save(images / "tiny.png")
    (images / "a_directory.jpg").mkdir()
    return {
        "b_missing": ("not_there.jpg", r"^image file not found$"),
        "b_dir": ("a_directory.jpg", r"not a regular file"),
        "b_zero": ("zero.jpg", r"image file is empty"),
        "b_trunc": ("truncated.jpg", r"could not be decoded.*truncated"),
        "b_text": ("text.jpg", r"not a recognised image format"),
        "b_corrupt": ("corrupt.png", r"could not be decoded"),
        "b_bomb": ("bomb.png", r"9000x9000 pixels, more than the 64 MP"),
        "b_tiny": ("tiny.png", r"4x4 px; at least 8 px"),
    }


def _row(pid: str, title: str = "A product", images: str = "plain.jpg", **kw: str) -> list[str]:
    values = {
        "product_id": pid,
        "title": title,
        "category": "Apparel/Topwear",
        "image_files": images,
    }
    values.update(kw)
    return [values.get(h, "") for h in HEADER]


@pytest.fixture(scope="module")
def csv_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The CSV catalog and, per broken row's line number, the expected reason pattern."""
    root = tmp_path_factory.mktemp("bad_csv")
    images = root / "images"
    images.mkdir()
    good = _good_images(images)
    bad_images = _bad_images(images)
    rows: list[list[str] | bytes] = []
    expected: dict[str, str] = {}  # "csv:<line>" or "image:<file>" -> reason pattern

    def bad(row: list[str] | bytes, reason: str) -> None:
        rows.append(row)
        expected[f"csv:{len(rows) + 1}"] = reason

    for pid, name in good.items():
        rows.append(_row(pid, f"Good {pid}", name))
    rows.append(_row("g_price", "Priced shirt", "plain.jpg", price="19.99", color="Navy"))
    # A product with one good and one broken image keeps the good one.
    rows.append(_row("g_partial", "Partly broken", "plain.jpg;zero.jpg"))
    expected["image:zero.jpg:g_partial"] = r"image file is empty"
    for pid, (name, reason) in bad_images.items():
        rows.append(_row(pid, f"Bad {pid}", name))
        expected[f"image:{name}:{pid}"] = reason
    bad(_row(""), r"^missing product_id$")
    bad(_row("x" * 300), r"product_id is 300 characters")
    bad(_row("g_cmyk", "Again"), r"duplicate product_id \(first seen on line 2\)")
    bad(_row("b1", ""), r"^missing title$")
    bad(_row("b2", "t" * 1500), r"title is 1500 characters")
    bad(_row("b3", images=""), r"no image_files listed")
    bad(_row("b4", images="/etc/passwd"), r"is absolute")
    bad(_row("b5", images="../outside.jpg"), r"leaves the catalog folder")
    bad(_row("b6", price="cheap"), r"price 'cheap' is not a number")
    bad(_row("b7", price="-5"), r"price '-5' is negative")
    bad(_row("b8", price="inf"), r"not a finite number")
    bad(_row("b9", year="20x0"), r"year '20x0' is not a whole number")
    bad([*_row("b10"), "surplus"], r"row has 9 fields, the header has 8")
    bad(_row("b11")[:5], r"row has 5 fields, the header has 8")
    bad(b"b12,Caf\xe9 latte,Grocery,,,,,plain.jpg", r"not valid UTF-8")
    bad(_row("b13", "Bell\x07 shirt"), r"title contains control characters")
    bad(_row("b14", images=";".join(f"i{i}.jpg" for i in range(70))), r"at most 64 per product")
    rows.append(_row("g_last", "Last good row", "plain.jpg"))

    with (root / "products.csv").open("wb") as fh:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(HEADER)
        fh.write(text.getvalue().encode())
        for row in rows:
            if isinstance(row, bytes):
                fh.write(row + b"\n")
                continue
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(row)
            fh.write(text.getvalue().encode())
    return root, expected


@pytest.fixture(scope="module")
def jsonl_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("bad_jsonl")
    (root / "images").mkdir()
    _pattern(seed=3).save(root / "images" / "plain.jpg")
    _pattern(seed=8).save(root / "images" / "other.jpg")
    lines = [
        json.dumps(
            {
                "product_id": 101,  # numbers are accepted as ids
                "title": "JSON shirt",
                "category": "Apparel/Topwear/Shirts",
                "price": 25,
                "attributes": {"color": "Red", "material": "cotton"},
                "image_files": ["plain.jpg", "images/other.jpg"],
            }
        ),
        "",  # blank lines are fine
        json.dumps(
            {
                "product_id": "j2",
                "title": "Flat attrs",
                "colour": "Blue",
                "image_files": "other.jpg",
            }
        ),
        '{"product_id": "j3", "title": "broken json", ',
        json.dumps(["j4", "an array"]),
        json.dumps({"product_id": "j5", "title": ["a", "list"], "image_files": "plain.jpg"}),
        json.dumps(
            {"product_id": "j6", "title": "t", "attributes": "red", "image_files": "plain.jpg"}
        ),
        json.dumps({"product_id": "j7", "title": "t", "image_files": 7}),
        json.dumps({"product_id": "j8", "title": "t", "images": "x", "image_files": "plain.jpg"}),
        json.dumps(
            {
                "product_id": "j9",
                "title": "t",
                "attributes": {"size": {"eu": 42}},
                "image_files": "plain.jpg",
            }
        ),
    ]
    (root / "products.jsonl").write_text("\n".join(lines) + "\n")
    expected = {
        "jsonl:4": r"not valid JSON",
        "jsonl:5": r"must be a JSON object, not list",
        "jsonl:6": r"title must be text, not list",
        "jsonl:7": r"attributes must be an object",
        "jsonl:8": r"image_files must be a ';'-separated string or a list",
        "jsonl:10": r"attribute 'size' must be text or a number, not dict",
    }
    return root, expected


def _ingest(root: Path, tmp_path: Path, bundle: Path) -> tuple[IngestReport, EdgeStore, Encoder]:
    encoder = Encoder(bundle, device="cpu")
    store = EdgeStore(tmp_path / "qdrant")
    report = ingest_catalog(root, store, encoder, batch_size=4)
    return report, store, encoder


def _key(source: str, product_id: str, root: Path) -> str:
    for name in ("products.csv", "products.jsonl"):
        prefix = f"{root / name}:"
        if source.startswith(prefix):
            return f"{name.split('.')[1]}:{source[len(prefix) :]}"
    return f"image:{Path(source).relative_to(root / 'images')}:{product_id}"


def _assert_rejects(report: IngestReport, root: Path, expected: dict[str, str]) -> dict[str, str]:
    """Exactly the expected rejects, each with a reason matching its pattern."""
    got = {_key(r.source, r.product_id, root): r.reason for r in report.rejects}
    assert got.keys() == expected.keys()
    for key, pattern in expected.items():
        assert re.search(pattern, got[key]), (key, got[key])
    return got


def test_every_kind_of_bad_csv_input_is_quarantined_with_its_reason(
    csv_catalog: tuple[Path, dict[str, str]], tmp_path: Path, tiny_bundle: Path
) -> None:
    root, expected = csv_catalog
    report, store, _ = _ingest(root, tmp_path, tiny_bundle)
    try:
        got = _assert_rejects(report, root, expected)
        kinds = {re.sub(r"\d+|'[^']*'", "#", reason) for reason in got.values()}
        assert len(kinds) >= 24, sorted(kinds)

        path = write_quarantine(tmp_path / "quarantine", "run1", report.rejects)
        assert path is not None
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(lines) == len(expected)
        assert all(line["reason"] and line["source"] and line["run"] == "run1" for line in lines)

        good = {"g_cmyk", "g_16bit", "g_palette", "g_alpha", "g_la", "g_grey", "g_gif", "g_webp"}
        good |= {"g_pngjpg", "g_exif", "g_sub", "g_price", "g_partial", "g_last"}
        stored = {h.payload["product_id"] for h in store.scan(["product_id"])}
        assert stored == good
        assert report.products == len(good) and report.images == len(good)
        priced = [h for h in store.scan(["product_id", "price", "attributes"])]
        by_id = {h.payload["product_id"]: h.payload for h in priced}
        assert by_id["g_price"]["price"] == pytest.approx(19.99)
        assert by_id["g_price"]["attributes"] == {"color": "Navy"}
        assert "price" not in by_id["g_cmyk"]
    finally:
        store.close()


def test_exif_orientation_is_applied_before_embedding(
    csv_catalog: tuple[Path, dict[str, str]], tmp_path: Path, tiny_bundle: Path
) -> None:
    root, _ = csv_catalog
    _report, store, encoder = _ingest(root, tmp_path, tiny_bundle)
    try:
        upright = _pattern((80, 40), seed=7)
        raw_sideways = Image.open(root / "images" / "exif.jpg").convert("RGB")  # EXIF ignored
        assert raw_sideways.size == (40, 80)
        up_vec, side_vec = encoder.encode_images([upright, raw_sideways])
        hit = store.search_dense(up_vec, 1)[0]
        assert hit.payload["product_id"] == "g_exif"
        # JPEG loss keeps it just under 1; the sideways pixels would score clearly lower.
        sideways_score = float(np.dot(side_vec, up_vec))
        assert hit.score > 0.99
        assert hit.score - sideways_score > 0.01, (hit.score, sideways_score)
    finally:
        store.close()


def test_jsonl_catalog_maps_fields_and_quarantines_broken_lines(
    jsonl_catalog: tuple[Path, dict[str, str]], tmp_path: Path, tiny_bundle: Path
) -> None:
    root, expected = jsonl_catalog
    report, store, _ = _ingest(root, tmp_path, tiny_bundle)
    try:
        _assert_rejects(report, root, expected)
        payloads = {
            (h.payload["product_id"], h.payload["image_file"]): h.payload
            for h in store.scan(["product_id", "image_file", "price", "attributes", "title"])
        }
        assert set(payloads) == {
            ("101", "plain.jpg"),
            ("101", "images/other.jpg"),
            ("j2", "other.jpg"),
            ("j8", "plain.jpg"),  # an attribute may be called "images": attributes are nested
        }
        assert payloads[("j8", "plain.jpg")]["attributes"] == {"images": "x"}
        shirt = payloads[("101", "plain.jpg")]
        assert shirt["price"] == 25.0
        assert shirt["attributes"] == {"color": "Red", "material": "cotton"}
        assert payloads[("j2", "other.jpg")]["attributes"] == {"colour": "Blue"}
        # Attributes are searchable text too.
        assert {h.payload["product_id"] for h in store.search_bm25("cotton", 5)} == {"101"}
    finally:
        store.close()
