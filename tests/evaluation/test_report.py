"""``snapshop eval --report``: the page parses, every picture it shows exists and is a PNG/JPEG."""

from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from tests.helpers import snapshop_cmd


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.headings: list[str] = []
        self.worst_rows: dict[str, int] = {}
        self._in_h2 = False
        self._table_kind: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(a)
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "table" and a.get("class") == "worst":
            self._table_kind = a["data-kind"]
            self.worst_rows[self._table_kind] = 0
        elif tag == "td" and a.get("class") == "query" and self._table_kind:
            self.worst_rows[self._table_kind] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False
        elif tag == "table":
            self._table_kind = None

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.headings.append(data.strip())


def test_report_page_shows_its_plots_and_thumbnails(
    ingested_dir: Path, tiny_bundle: Path, mini_queries: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    proc = subprocess.run(
        [
            *snapshop_cmd(ingested_dir, tiny_bundle),
            "eval",
            str(mini_queries),
            "--report",
            str(report),
            "--json",
            str(tmp_path / "eval.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"report: {report / 'index.html'}" in proc.stderr.replace("\n", "")
    page = _Page()
    page.feed((report / "index.html").read_text(encoding="utf-8"))
    pngs = {img["src"] for img in page.images if img["src"].endswith(".png")}
    assert pngs == {
        "legs_vs_fused.png",
        "weight_sweep_image.png",
        "weight_sweep_text.png",
        "recall_by_category.png",
    }
    for src in pngs:
        with Image.open(report / src) as im:  # a real PNG, not an empty file
            assert im.format == "PNG" and im.width > 300 and im.height > 200
    thumbs = [img["src"] for img in page.images if img["src"].startswith("thumbs/")]
    assert len(thumbs) > 20
    for src in set(thumbs):
        with Image.open(report / src) as im:
            assert im.format == "JPEG" and max(im.size) <= 96
    # Hits and misses are marked on the result thumbnails.
    assert {img.get("class") for img in page.images} >= {"hit", "miss"}
    assert "Each leg alone vs fused" in page.headings and "Weight sweeps" in page.headings
    assert "Recall@10 per category" in page.headings
    # Worst queries: all 8 photo queries and 10 of the 12 typed ones.
    assert page.worst_rows == {"image": 8, "text": 10}
    # The report does not leak into the JSON, which keeps the documented shape.
    result = json.loads((tmp_path / "eval.json").read_text())
    assert "queries" not in result and {"image", "text", "legs"} <= set(result)
