"""Progress bars keep talking when stderr is a log file, not a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import BarColumn, TextColumn

from app.cli.common import _TalkingProgress, train_progress


def _run(terminal: bool, every: float) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, width=100)
    with _TalkingProgress(
        TextColumn("{task.description}"), BarColumn(), console=console, every=every
    ) as progress:
        task = progress.add_task("training", total=3, loss="")
        for step in range(1, 4):
            progress.update(task, completed=step, loss=f"loss {4 - step}")
    return buf.getvalue()


def test_a_log_file_gets_a_plain_line_per_update() -> None:
    lines = [line for line in _run(False, every=0).splitlines() if line.startswith("training:")]
    assert [line.split(" (")[0] for line in lines] == [
        "training: 1/3 loss 3",
        "training: 2/3 loss 2",
        "training: 3/3 loss 1",
    ]


def test_lines_are_spaced_by_the_interval() -> None:
    lines = [line for line in _run(False, every=3600).splitlines() if line.startswith("training:")]
    assert len(lines) == 1  # the first update speaks; the next ones fall inside the hour


def test_a_terminal_gets_the_bar_alone() -> None:
    assert "training:" not in _run(True, every=0)


def test_an_unknown_total_is_not_printed() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=100)
    with _TalkingProgress(TextColumn("{task.description}"), console=console, every=0) as progress:
        task = progress.add_task("training", total=None, loss="")
        train_progress(progress, task)(1, 0, 9.5, 1.0)  # the loop's "not known yet"
    assert "training: 1 loss 9.500" in buf.getvalue()
