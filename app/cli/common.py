"""What the command modules share: settings, error exits, progress bars, query-file options.

Heavy packages (the encoder, the store, torch) are imported inside the functions that need them,
so ``snapshop --help`` and the light commands start fast and the search path never loads torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from app.settings import Settings

if TYPE_CHECKING:
    from app.evaluation.querysets import QuerySetStore
    from app.evaluation.search import EvalQuery

err = Console(stderr=True)
out = Console()


class State:
    """The global options of this invocation, set by the root callback."""

    overrides: dict[str, Any] = {}  # noqa: RUF012 - one process, one CLI invocation


def settings() -> Settings:
    return Settings(**State.overrides)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the errors a person can act on into one line instead of a traceback."""
    from app.components import SetupError
    from app.search.errors import QueryError
    from app.store import StoreError
    from ingestion.catalog import CatalogError

    try:
        yield
    except (SetupError, StoreError, CatalogError, QueryError, FileNotFoundError) as exc:
        fail(str(exc))


# -- progress bars -----------------------------------------------------------------------------


class _TalkingProgress(Progress):
    """A rich progress bar that, when stderr is not a terminal (a log file, CI), prints a plain
    line per task at most every ``every`` seconds: rich draws nothing there until it stops."""

    def __init__(self, *columns: Any, every: float = 15.0, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._every = every
        self._said: dict[TaskID, float] = {}

    def _say(self, task_id: TaskID) -> None:
        if self.console.is_terminal:
            return
        now = time.monotonic()
        if now - self._said.get(task_id, now - self._every - 1) < self._every:
            return
        self._said[task_id] = now
        task = self._tasks[task_id]
        total = f"/{task.total:.0f}" if task.total else ""
        extra = " ".join(str(v) for v in task.fields.values() if v)
        self.console.print(
            f"{task.description}: {task.completed:.0f}{total} {extra} ({task.elapsed or 0:.0f}s)",
            highlight=False,
        )

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._say(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._say(task_id)


def progress_bar(field: str) -> Progress:
    """A progress bar on stderr whose last text column shows the task's ``field``."""
    return _TalkingProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}"),
        TimeRemainingColumn(),
        console=err,
    )


def train_progress(progress: Progress, task: TaskID) -> Callable[[int, int, float, float], None]:
    """The training loop's progress callback, drawn on ``progress``."""

    def update(step: int, total: int, loss: float, elapsed: float) -> None:
        progress.update(task, completed=step, total=total or None, loss=f"loss {loss:.3f}")

    return update


# -- evaluation queries: the options and the loading that eval, tune and queryset share ----------

QueriesDir = Annotated[
    Path | None,
    typer.Argument(help="Folder with text_queries.csv and/or image_queries.csv."),
]
ImageQueriesOpt = Annotated[
    Path | None, typer.Option(help="Photo queries CSV (dev_queries format).")
]
TextQueriesOpt = Annotated[
    Path | None, typer.Option(help="Typed queries CSV (dev_queries format).")
]
QuerySetOpt = Annotated[
    str | None, typer.Option(help="A stored query set (see `snapshop queryset`) instead of files.")
]
JudgementsOpt = Annotated[
    bool, typer.Option("--judgements", help="Refine the answers with people's marks.")
]


def query_sets() -> closing[QuerySetStore]:
    """The stored query sets, closed when the block ends."""
    from app.components import open_querysets

    return closing(open_querysets(settings()))


def load_queries(
    queries_dir: Path | None,
    image_queries: Path | None,
    text_queries: Path | None,
    query_set: str | None = None,
) -> list[EvalQuery]:
    """Evaluation queries from the files (or a folder holding them), or a stored set."""
    from app.evaluation.queries import QueryFileError, read_image_queries, read_text_queries
    from app.evaluation.querysets import QuerySetError
    from app.evaluation.search import eval_queries

    if queries_dir is not None:
        found = queries_dir / "image_queries.csv", queries_dir / "text_queries.csv"
        image_queries = image_queries or (found[0] if found[0].is_file() else None)
        text_queries = text_queries or (found[1] if found[1].is_file() else None)
    given_files = image_queries is not None or text_queries is not None
    if query_set is not None:
        if given_files:
            fail("give query files or --query-set, not both")
        with query_sets() as sets:
            try:
                return sets.load(query_set)
            except QuerySetError as exc:
                fail(str(exc))
    if not given_files:
        fail("give --image-queries CSV, --text-queries CSV, a folder holding them, or --query-set")
    try:
        photos = read_image_queries(image_queries) if image_queries else []
        texts = read_text_queries(text_queries) if text_queries else []
        return eval_queries(photos, texts)
    except (QueryFileError, OSError) as exc:
        fail(str(exc))


def load_qrels(use: bool) -> dict[str, dict[str, bool]] | None:
    """People's marks as ``{query_key: {product_id: relevant}}``, when ``--judgements`` asks."""
    if not use:
        return None
    from app.components import open_judgements

    with closing(open_judgements(settings())) as marks:
        return marks.qrels()
