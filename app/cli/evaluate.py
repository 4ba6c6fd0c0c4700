"""``snapshop eval`` (search quality on known answers, HTML report) and ``snapshop tune``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from app.cli.common import (
    ImageQueriesOpt,
    JudgementsOpt,
    QueriesDir,
    QuerySetOpt,
    TextQueriesOpt,
    err,
    fail,
    friendly_errors,
    load_qrels,
    load_queries,
    out,
    settings,
)


def eval_cmd(
    queries_dir: QueriesDir = None,
    image_queries: ImageQueriesOpt = None,
    text_queries: TextQueriesOpt = None,
    query_set: QuerySetOpt = None,
    judgements: JudgementsOpt = False,
    profile: Annotated[str | None, typer.Option(help="Fusion profile (default: default).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report with plots into this folder.")
    ] = None,
) -> None:
    """Search quality on queries with known answers: the profile's fusion and each leg alone."""
    from app.components import open_components
    from app.evaluation.search import evaluate_search

    queries = load_queries(queries_dir, image_queries, text_queries, query_set)
    qrels = load_qrels(judgements)
    cfg = settings()
    with friendly_errors(), open_components(cfg) as parts:
        result = evaluate_search(
            parts.service, queries, profile=profile, judgements=qrels, per_query=report is not None
        )
        if report is not None:
            from app.evaluation.report import write_search_report

            page = write_search_report(
                report, result, parts.service, parts.store, queries, profile, qrels
            )
    records = result.pop("queries", None)
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("queries", "fusion / leg", "n", "R@1", "R@5", "R@10", "MRR", "nDCG@10", "ms/q")
    rows = [
        (kind, f"profile {result['profile']}", result[kind])
        for kind in ("image", "text")
        if kind in result
    ]
    rows += [(v["queries"], f"leg {leg}", v) for leg, v in result["legs"].items()]
    for kind, label, m in rows:
        table.add_row(
            kind,
            label,
            str(m["n"]),
            *(f"{m[key]:.3f}" for key in ("recall@1", "recall@5", "recall@10", "mrr", "ndcg@10")),
            f"{m['ms_per_query']:.1f}",
        )
    out.print(table)
    if "judgements" in result:
        j = result["judgements"]
        err.print(
            f"judgements: {j['queries_judged']} queries judged, {j['added']} answers added, "
            f"{j['removed']} removed, {j['dropped']} queries dropped"
        )
    err.print(f"model {result['model']}")
    if report is not None and records is not None:
        err.print(f"report: {page}")


def tune_cmd(
    queries_dir: QueriesDir = None,
    image_queries: ImageQueriesOpt = None,
    text_queries: TextQueriesOpt = None,
    query_set: QuerySetOpt = None,
    judgements: JudgementsOpt = False,
    profile: Annotated[
        str | None, typer.Option(help="Profile to start from and compare with (default).")
    ] = None,
    metric: Annotated[str, typer.Option(help="What to maximise.")] = "ndcg@10",
    trials: Annotated[int, typer.Option(min=1, help="Random fusions tried before refining.")] = 200,
    validation: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Share of queries held out.")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the split and the search.")] = 0,
    methods: Annotated[
        str, typer.Option(help="Fusion methods to try, comma-separated.")
    ] = "rrf,minmax,zscore,dbsf",
    save: Annotated[
        str | None, typer.Option(help="Save the winner as a new version of this profile.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON here.")] = None,
) -> None:
    """Choose fusion method, k and leg weights on a training split; grade on held-out queries."""
    from app.components import open_components
    from app.evaluation.offline import collect
    from app.evaluation.search import apply_judgements
    from app.evaluation.tune import MIN_GAIN, MIN_T, tune
    from app.profiles.model import FusionProfile

    queries = load_queries(queries_dir, image_queries, text_queries, query_set)
    qrels = load_qrels(judgements)
    if qrels is not None:
        queries, _ = apply_judgements(queries, qrels)
    cfg = settings()
    with friendly_errors(), open_components(cfg) as parts:
        base = parts.service.profile(profile)
        err.print(f"running the legs of {len(queries)} queries once ...")
        cached = collect(parts.service, queries, profile)
        try:
            result = tune(
                cached,
                base,
                metric,
                trials,
                validation,
                seed,
                [m.strip() for m in methods.split(",") if m.strip()],
            )
        except ValueError as exc:
            fail(str(exc))
        saved: FusionProfile | None = None
        if save is not None and result.improved:
            try:
                saved = parts.profiles.save(result.tuned_profile(base, save))
            except ValidationError as exc:
                fail(f"cannot save profile {save!r}: {exc.errors()[0]['msg']}")
    body = {"profile": f"{base.name}@{base.version}", **result.to_json()}
    if saved is not None:
        body["saved"] = f"{saved.name}@{saved.version}"
    if json_out is not None:
        json_out.write_text(json.dumps(body, indent=2) + "\n")
    table = Table("fusion", "method", "k", "weights", f"train {metric}", f"validation {metric}")
    for label, spec, key in (
        (f"start ({base.name}@{base.version})", result.base, "base"),
        ("best on train", result.best, "best"),
    ):
        weights = ", ".join(f"{leg} {spec.weight(leg):g}" for leg in result.legs)
        table.add_row(
            label,
            spec.method,
            str(spec.k) if spec.method == "rrf" else "-",  # k is RRF's alone
            weights,
            f"{result.train[key]:.4f}",
            f"{result.validation[key]:.4f}",
        )
    out.print(table)
    err.print(
        f"{result.trials} fusions tried on {result.n_train} training queries; "
        f"{result.n_validation} held out for validation"
    )
    if not result.improved:
        c = result.candidate
        err.print(
            "kept the starting profile: the best on train "
            f"({c['fusion']['method']}, train {c['train']:.4f}, validation "
            f"{c['validation']:.4f}, paired t {c['paired_t']}) did not beat it consistently "
            f"enough (needs a gain over {MIN_GAIN} and t >= {MIN_T})"
        )
    if saved is not None:
        err.print(f"saved as profile {saved.name}@{saved.version}")
    elif save is not None:
        err.print(f"nothing saved: {save!r} would equal the starting profile")
