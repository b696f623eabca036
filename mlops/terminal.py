"""How `mlops demo` shows its steps: on a terminal a spinner with the elapsed time and the step's
detail (a progress bar), elsewhere (a log, a pipe) one line per step when it ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """[########------------] 36/90 fits"""
    filled = width * done // total if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} fits"


@dataclass
class StepLine:
    """What a step shows after its title while it runs (a progress bar)."""

    detail: str = ""

    def after(self, title: str) -> str:
        return f"{title}  {self.detail}" if self.detail else title


@contextmanager
def step(title: str, stream: IO[str]) -> Iterator[StepLine]:
    """Show a step: a spinner with the elapsed time on a terminal (and the detail the step sets,
    such as a progress bar), one line per step otherwise."""
    started = time.monotonic()
    live = _isatty(stream)
    done = threading.Event()
    shown = StepLine()

    def spin() -> None:
        frames = "|/-\\"
        tick = 0
        while not done.wait(0.1):
            write(stream, f"\r{frames[tick % 4]} {shown.after(title)}  {time.monotonic() - started:.1f} s\033[K")
            tick += 1

    spinner = threading.Thread(target=spin, daemon=True) if live else None
    if spinner is not None:
        spinner.start()
    outcome = "FAILED"
    try:
        yield shown
        outcome = "ok"
    finally:
        done.set()
        if spinner is not None:
            spinner.join()
        elapsed = time.monotonic() - started
        write(stream, ("\r\033[K" if live else "") + f"{outcome:<6} {shown.after(title)}  ({elapsed:.1f} s)\n")


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def write(stream: IO[str], text: str) -> None:
    """Write and flush at once; a closed or broken stream is not the demo's failure."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass
