"""``snapshop eval --report DIR``: one HTML page with PNG plots a product manager can read.

Sections: the metrics table; each leg alone vs the fused list; weight-sweep curves (each leg's
weight moved with the others held, from ``app.evaluation.offline.sweep``); recall@10 per
category; the worst queries with thumbnails of the photo, an expected product and the top
results (green border: relevant). Everything is written into DIR, so the folder can be zipped
or served as it is; nothing is fetched from anywhere.

``write_search_report`` gathers what the page needs from a running search (the sweeps, each
product's photo and category); ``write_report`` only draws.
"""

from __future__ import annotations

import hashlib
import html
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from app.evaluation.metrics_table import METRIC_NAMES
from app.evaluation.offline import collect, sweep
from app.evaluation.search import EvalQuery, apply_judgements
from app.search.service import SearchService
from app.store import VectorStore
from app.store.fields import CATEGORY_PATH, IMAGE_PATH

Curve = list[tuple[float, float]]
ImageOf = Callable[[str], Path | None]  # product id -> a catalog photo of it, if known
CategoryOf = Callable[[str], str]  # product id -> its category path ("" if unknown)

THUMB_PX = 96
TOP_SHOWN = 5
CATEGORY_DEPTH = 2  # "Apparel/Topwear": deep enough to tell areas apart, few enough bars to read


def _category(record: Mapping[str, Any], category_of: CategoryOf | None) -> str:
    """The query's category: the file's, else the commonest among its relevant products."""
    path = str(record.get("category") or "")
    if not path and category_of is not None:
        votes = Counter(category_of(pid) for pid in record["relevant"][:50])
        votes.pop("", None)
        path = votes.most_common(1)[0][0] if votes else ""
    return "/".join(path.split("/")[:CATEGORY_DEPTH]) or "(unknown)"


def _plt() -> Any:
    # Imported here: plotting is a report-time need, and the API process never pays for it.
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    return plt


def _legs_vs_fused(result: Mapping[str, Any], path: Path) -> bool:
    kinds = [k for k in ("image", "text") if k in result]
    if not kinds:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 4), squeeze=False)
    metric_names = ("recall@10", "mrr", "ndcg@10")
    for ax, kind in zip(axes[0], kinds, strict=True):
        rows = [("fused", result[kind])] + [
            (leg, m) for leg, m in result["legs"].items() if m.get("queries") == kind
        ]
        width = 0.8 / len(rows)
        for i, (label, m) in enumerate(rows):
            xs = [j + i * width for j in range(len(metric_names))]
            ax.bar(xs, [m[name] for name in metric_names], width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metric_names))], metric_names)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{kind} queries (n={result[kind]['n']})")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _sweep(
    kind: str, curves: Mapping[str, Curve], current: Mapping[str, float], path: Path
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for leg, curve in curves.items():
        xs, ys = zip(*curve, strict=True)
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=leg)
        w = float(current.get(leg, 1.0))
        if w in xs:  # the weight in use, on its curve
            ax.plot([w], [ys[xs.index(w)]], marker="*", markersize=12, color=line.get_color())
    ax.set_xscale("symlog", linthresh=0.25)
    ax.set_xlabel("leg weight (others held at the profile's; star = in use)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"weight sweep, {kind} queries")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _by_category(
    records: Sequence[Mapping[str, Any]], category_of: CategoryOf | None, path: Path
) -> dict[str, tuple[float, int]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        groups[f"{r['kind']}: {_category(r, category_of)}"].append(float(r["recall@10"]))
    table = {c: (sum(v) / len(v), len(v)) for c, v in sorted(groups.items())}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(table) + 1.2))
    labels = [f"{c} (n={n})" for c, (_, n) in table.items()]
    ax.barh(labels, [m for m, _ in table.values()], color="#4a7bb7")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("recall@10")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return table


def _thumb(src: Path | None, out_dir: Path) -> str | None:
    """A small JPEG of ``src`` under ``out_dir/thumbs``; its path relative to the page."""
    if src is None or not src.is_file():
        return None
    name = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:16] + ".jpg"
    target = out_dir / "thumbs" / name
    if not target.exists():
        try:
            with Image.open(src) as im:
                small = ImageOps.exif_transpose(im).convert("RGB")
                small.thumbnail((THUMB_PX, THUMB_PX))
                small.save(target, "JPEG", quality=80)
        except OSError:
            return None  # an unreadable photo costs its thumbnail, not the report
    return f"thumbs/{name}"


def _img(src: str | None, title: str, ok: bool | None = None) -> str:
    if src is None:
        return f'<span class="missing" title="{html.escape(title)}">no image</span>'
    cls = "" if ok is None else (' class="hit"' if ok else ' class="miss"')
    t = html.escape(title)
    return f'<img src="{html.escape(src)}" alt="{t}" title="{t}"{cls}>'


def _metrics_table(result: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{m}</th>" for m in ("queries", "fusion / leg", "n", *METRIC_NAMES))
    rows = []
    entries = [(k, f"fused ({result['profile']})", result[k]) for k in ("image", "text")]
    entries = [e for e in entries if e[0] in result]
    entries += [(m["queries"], f"leg {leg}", m) for leg, m in result["legs"].items()]
    for kind, label, m in entries:
        cells = "".join(f"<td>{m[name]:.3f}</td>" for name in METRIC_NAMES)
        rows.append(
            f"<tr><td>{kind}</td><td>{html.escape(label)}</td><td>{m['n']}</td>{cells}</tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _worst_table(
    kind: str, bad: Sequence[Mapping[str, Any]], find: ImageOf, out_dir: Path
) -> list[str]:
    parts = [
        f"<h2>Worst {len(bad)} {kind} queries (by nDCG@10)</h2>",
        f"<table class='worst' data-kind='{kind}'><tr><th>query</th><th>nDCG@10</th>"
        f"<th>expected</th><th>top {TOP_SHOWN} results</th></tr>",
    ]
    for r in bad:
        relevant = set(r["relevant"])
        if r["image"]:
            query = _img(_thumb(Path(r["image"]), out_dir), r["label"])
        else:
            query = html.escape(r["label"])
        expected_id = r["relevant"][0]
        expected = _img(_thumb(find(expected_id), out_dir), expected_id)
        shown = "".join(
            _img(
                _thumb(find(x["product_id"]), out_dir),
                f"{x['product_id']}: {x['title']}",
                x["product_id"] in relevant,
            )
            for x in r["results"][:TOP_SHOWN]
        )
        parts.append(
            f"<tr><td class='query' data-query-id='{html.escape(r['query_id'])}'>{query}"
            f"<br><small>{html.escape(r['query_id'])}</small></td>"
            f"<td>{r['ndcg@10']:.3f}</td><td>{expected}"
            f"<br><small>{len(relevant)} relevant</small></td><td>{shown}</td></tr>"
        )
    parts.append("</table>")
    return parts


def write_report(
    out_dir: Path,
    result: Mapping[str, Any],
    sweeps: Mapping[str, Mapping[str, Curve]] | None = None,
    image_of: ImageOf | None = None,
    category_of: CategoryOf | None = None,
    worst: int = 10,
) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the page's path.

    ``result`` is ``evaluate_search(..., per_query=True)``'s output; ``sweeps`` maps a query
    kind to per-leg curves; ``image_of`` finds a product's photo for the thumbnails and
    ``category_of`` its category, for queries whose file gives none.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "thumbs").mkdir(exist_ok=True)
    records: list[Mapping[str, Any]] = result.get("queries", [])
    find = image_of or (lambda _pid: None)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>snapshop evaluation: {html.escape(result['profile'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
        "img{margin:2px;border:3px solid transparent;vertical-align:middle}"
        "img.hit{border-color:#2a2}img.miss{border-color:#c33}"
        ".missing{display:inline-block;width:96px;color:#999;font-size:80%}</style></head><body>",
        "<h1>snapshop evaluation</h1>",
        f"<p>model <code>{html.escape(result['model'])}</code>, profile "
        f"<code>{html.escape(result['profile'])}</code>, written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
    ]
    if "judgements" in result:
        j = result["judgements"]
        parts.append(
            f"<p>Human judgements applied: {j['queries_judged']} queries judged, "
            f"{j['added']} products added to and {j['removed']} removed from the answers, "
            f"{j['dropped']} queries left without an answer and dropped.</p>"
        )
    parts += ["<h2>Metrics</h2>", _metrics_table(result)]
    if _legs_vs_fused(result, out_dir / "legs_vs_fused.png"):
        parts += [
            "<h2>Each leg alone vs fused</h2>",
            '<img src="legs_vs_fused.png" alt="each leg alone vs the fused list">',
        ]
    if sweeps:
        parts.append("<h2>Weight sweeps</h2>")
        current = result.get("fusion", {}).get("weights", {})
        for kind, curves in sweeps.items():
            name = f"weight_sweep_{kind}.png"
            _sweep(kind, curves, current, out_dir / name)
            parts.append(f'<img src="{name}" alt="weight sweep, {kind} queries">')
    if records:
        table = _by_category(records, category_of, out_dir / "recall_by_category.png")
        parts += [
            "<h2>Recall@10 per category</h2>",
            '<img src="recall_by_category.png" alt="recall@10 per category">',
            "<table><tr><th>category</th><th>n</th><th>recall@10</th></tr>",
            *(
                f"<tr><td>{html.escape(c)}</td><td>{n}</td><td>{m:.3f}</td></tr>"
                for c, (m, n) in table.items()
            ),
            "</table>",
        ]
        for kind in ("image", "text"):
            bad = sorted(
                (r for r in records if r["kind"] == kind),
                key=lambda r: (r["ndcg@10"], r["recall@10"], r["query_id"]),
            )[:worst]
            if bad:
                parts += _worst_table(kind, bad, find, out_dir)
    parts.append("</body></html>")
    page = out_dir / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    return page


def write_search_report(
    out_dir: Path,
    result: Mapping[str, Any],
    service: SearchService,
    store: VectorStore,
    queries: Sequence[EvalQuery],
    profile: str | None = None,
    qrels: Mapping[str, Mapping[str, bool]] | None = None,
) -> Path:
    """``write_report`` for ``result`` plus weight sweeps over the queries' cached leg lists.

    ``service`` runs the legs once per query (with ``profile``, and ``qrels`` applied as
    ``evaluate_search`` did); ``store`` gives each product's photo and category.
    """
    chosen = service.profile(profile)
    base = chosen.spec()
    if qrels is not None:
        queries, _ = apply_judgements(queries, qrels)
    cached = collect(service, queries, profile)
    sweeps = {}
    for kind in ("image", "text"):
        subset = [c for c in cached if c.kind == kind]
        legs = sorted({leg for c in subset for leg in c.lists})
        if subset:
            sweeps[kind] = sweep(subset, base, legs, chosen.exact_match)

    @lru_cache(maxsize=4096)
    def payload(pid: str) -> dict[str, Any]:
        points = store.product_points(pid)
        return dict(points[0].payload) if points else {}

    def image_of(pid: str) -> Path | None:
        path = payload(pid).get(IMAGE_PATH)
        return Path(path) if path else None

    def category_of(pid: str) -> str:
        return str(payload(pid).get(CATEGORY_PATH, ""))

    return write_report(out_dir, result, sweeps, image_of, category_of)
