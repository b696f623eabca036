"""Output of a stack: the processes' log lines and our own messages, each prefixed by its name
(coloured per process on a terminal); and the tail of a log file."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_COLOURS = ("36", "33", "35", "32", "34", "31")


@dataclass
class LogPrinter:
    """Writes the processes' output and our own messages line by line, each with a name prefix."""

    out: IO[str]
    width: int
    colour: bool = False
    stamp: bool = False  # start our own messages with the time (a log file has no terminal to date them)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def prefix(self, name: str, index: int | None = None) -> str:
        """The column that starts each line of name's output (coloured per process on a terminal)."""
        label = f"{name:<{self.width}} |"
        if self.colour:
            code = "1" if index is None else _COLOURS[index % len(_COLOURS)]
            label = f"\033[{code}m{label}\033[0m"
        return label + " "

    def write(self, text: str) -> None:
        """Write text (one or more whole lines) without interleaving it with another writer."""
        with self.lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # our reader went away; keep draining the pipes so the services never block

    def say(self, message: str) -> None:
        """A message from `mlops` itself, in the same column layout as the services' logs."""
        when = time.strftime("%Y-%m-%d %H:%M:%S ") if self.stamp else ""
        self.write(when + self.prefix("mlops") + message + "\n")

    def follow(self, name: str, index: int, stream: IO[bytes]) -> None:
        """Copy stream to the output in a background thread, every line prefixed by name."""
        prefix = self.prefix(name, index)

        def pump() -> None:
            for raw in iter(stream.readline, b""):
                self.write(prefix + raw.decode(errors="replace").rstrip("\r\n") + "\n")
            stream.close()

        thread = threading.Thread(target=pump, name=f"log-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def drain(self, timeout: float) -> None:
        """Wait until every followed stream reached its end (or timeout)."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a text file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
