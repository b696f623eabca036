"""The supervisor: the `mlops up` process that starts the stack, waits until it answers, then
watches it until asked to stop, restarting a process that dies.

It runs in the terminal (`mlops up`, logs streamed with a prefix) or in the background
(`mlops up --detach` starts it as its own process, logs to files), the same code either way.
Restarts back off (RESTART_DELAYS) while a process keeps dying soon after its start, and stop
after one more crash in a row than there are delays; `mlops up --only NAME` starts it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlops.kernel.config import Settings
from mlops.stack.errors import Interrupted, StackError, StartFailed
from mlops.stack.logs import LogPrinter, tail
from mlops.stack.plan import MLFLOW_UI, SERVICES, Launch, in_start_order, plan, service_environment
from mlops.stack.ports import port_in_use
from mlops.stack.processes import (
    READY_PATH,
    describe_exit,
    ready_path,
    signal_group,
    start_process,
    stop_groups,
    wait_ready,
)
from mlops.stack.signals import StopRequest
from mlops.stack.state import Member, StackState, requests_dir, state_path, write_state

# Seconds before restart 1, 2, ... of a process that keeps dying soon after it started.
RESTART_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0)
# A crash after this many seconds of answering starts the count again.
STABLE_SECONDS = 10.0


@dataclass
class Supervised:
    """One process of the stack and its history of restarts."""

    launch: Launch
    index: int
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready_at: float | None = None  # set by its waiter thread once it answers
    state: str = "starting"
    restarts: int = 0
    crashes_in_a_row: int = 0
    last_exit: str | None = None
    restart_at: float | None = None
    generation: int = 0
    late: bool = False  # said that it does not answer yet

    @property
    def member(self) -> Member:
        """This process as the state file records it."""
        return Member(
            self.launch.name,
            self.process.pid if self.process is not None else 0,
            self.launch.port,
            self.launch.url,
            self.launch.marker,
            str(self.log_path) if self.log_path is not None else None,
            self.state,
            self.restarts,
            self.last_exit,
            round(self.ready_at - self.started_at, 2) if self.ready_at is not None else None,
        )


@dataclass
class Supervisor:
    """Starts, watches and stops the processes of one stack."""

    settings: Settings
    request: StopRequest
    say: Callable[[str], None]
    timeout: float
    grace: float
    printer: LogPrinter | None = None  # in the terminal: follow each process's output
    log_dir: Path | None = None  # detached: each process logs to <log_dir>/<name>.log
    mlflow_ui_port: int | None = None
    restart_delays: tuple[float, ...] = RESTART_DELAYS
    stable_seconds: float = STABLE_SECONDS
    processes: dict[str, Supervised] = field(default_factory=dict)
    phase: str = "starting"
    error: str | None = None
    _requests_seen: int = 0

    # --- the one start-and-wait loop ---------------------------------------------------------

    def run(self, launches: list[Launch], on_running: Callable[[], None] = lambda: None) -> int:
        """Start the launches, wait for them, then supervise until a stop signal; stop everything.

        Returns 0 after a requested stop, 1 if the stack could not start.
        """
        code = 0
        try:
            for batch in in_start_order(launches):
                for launch in batch:
                    self._spawn(self._adopt(launch))
                self._save()
                self._wait_started([launch.name for launch in batch])
            self.phase = "running"
            self._save()
            on_running()
            self._watch()
        except Interrupted:
            pass
        except StackError as error:
            self.error = str(error)
            self.say(f"error: {error}; stopping what had started")
            for name in getattr(error, "names", []):
                log = self.processes[name].log_path
                if log is not None:
                    self.say(f"last lines of {log}:\n{tail(log)}")
            code = 1
        finally:
            self._stop()
        return code

    def _wait_started(self, names: list[str]) -> None:
        """Wait until every named process answers; one that exits or is late fails the start."""
        deadline = time.monotonic() + self.timeout
        pending = list(names)
        while pending:
            if self.request.wait(0.05):
                raise Interrupted()
            for name in list(pending):
                item = self.processes[name]
                if item.ready_at is not None:
                    item.state = "running"
                    pending.remove(name)
                    self.say(f"{name} is healthy ({item.ready_at - item.started_at:.1f} s)")
                    self._save()
                elif (code := item.process.poll()) is not None:
                    hint = f" (log: {item.log_path})" if item.log_path else ""
                    raise StartFailed(f"{name} exited with {describe_exit(code)} while starting{hint}", [name])
            if pending and time.monotonic() > deadline:
                raise StartFailed(
                    f"{', '.join(pending)} did not answer {READY_PATH} within {self.timeout:g} s", pending
                )

    # --- watching ----------------------------------------------------------------------------

    def _watch(self) -> None:
        """Until a stop signal: restart what dies, start what `mlops up --only` asks for."""
        while not self.request.wait(0.2):
            if self.request.requests != self._requests_seen:
                self._requests_seen = self.request.requests
                self._take_requests()
            if any([self._check(item) for item in list(self.processes.values())]):
                self._save()

    def _check(self, item: Supervised) -> bool:
        """Move one process along: notice its exit, restart it when due, notice it answers.
        Return whether anything changed."""
        now = time.monotonic()
        name = item.launch.name
        if item.state == "given up":
            return False
        if item.restart_at is not None:
            if now < item.restart_at:
                return False
            item.restart_at = None
            item.restarts += 1
            self._spawn(item)
            item.state = "restarting"
            return True
        code = item.process.poll()
        if code is not None:
            self._crashed(item, code, now)
            if item.restart_at is not None and item.restart_at <= now:
                self._check(item)  # no backoff: restart it now, not at the next turn
            return True
        if item.state != "running" and item.ready_at is not None:
            took = item.ready_at - item.started_at
            again = f"healthy again ({took:.1f} s after its restart)" if item.restarts else f"healthy ({took:.1f} s)"
            item.state = "running"
            self.say(f"{name} is {again}")
            return True
        if item.state != "running" and not item.late and now - item.started_at > self.timeout:
            # it runs but does not answer (its database may be down): say so once, and keep waiting
            item.late = True
            self.say(f"{name} runs but has not answered {READY_PATH} within {self.timeout:g} s; still waiting")
        return False

    def _crashed(self, item: Supervised, code: int, now: float) -> None:
        """A process exited on its own: restart it after a backoff, or give up on it."""
        name = item.launch.name
        # gunicorn's workers outlive a killed master for a moment, holding the port: end them now
        signal_group(item.process.pid, signal.SIGKILL)
        stable = item.ready_at is not None and now - item.ready_at >= self.stable_seconds
        item.crashes_in_a_row = 1 if stable else item.crashes_in_a_row + 1
        item.last_exit = f"{describe_exit(code)} at {time.strftime('%H:%M:%S')}"
        ran = f"after {now - item.started_at:.1f} s"
        if item.crashes_in_a_row > len(self.restart_delays):
            item.state = "given up"
            where = f" (its log: {item.log_path})" if item.log_path else ""
            self.say(
                f"{name} exited ({describe_exit(code)}) {item.crashes_in_a_row} times in a row, each time within "
                f"{self.stable_seconds:g} s of starting; giving up on it{where}. Once it is fixed, start it into "
                f'this stack with `mlops up --only {name}` (make up MLOPS_ARGS="--only {name}")'
            )
            return
        delay = self.restart_delays[item.crashes_in_a_row - 1]
        item.state = "restarting"
        item.restart_at = now + delay
        when = f" in {delay:g} s" if delay else ""
        self.say(
            f"{name} exited unexpectedly ({describe_exit(code)}) {ran}; restarting it{when} (restart {item.restarts + 1})"
        )

    def _take_requests(self) -> None:
        """Start the processes that `mlops up --only` asked this running stack for."""
        folder = requests_dir(self.settings)
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                wanted = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            finally:
                path.unlink(missing_ok=True)
            names = [n for n in wanted.get("services", []) if n in SERVICES]
            launches = plan(self.settings, names, mlflow_ui_port=wanted.get("mlflow_ui_port"))
            for launch in launches:
                self._start_asked(launch)
        self._save()

    def _start_asked(self, launch: Launch) -> None:
        item = self.processes.get(launch.name)
        if item is not None and item.state != "given up":
            self.say(f"asked to start {launch.name}: it is already {item.state}")
            return
        item = self._adopt(launch)
        if port_in_use(self.settings.host, launch.port):
            item.state, item.last_exit = "given up", f"port {launch.port} is in use"
            self.say(f"cannot start {launch.name}: port {launch.port} is in use")
            return
        self.say(f"starting {launch.name}, as asked")
        self._spawn(item)

    # --- starting and stopping ---------------------------------------------------------------

    def _adopt(self, launch: Launch) -> Supervised:
        """Take a launch under supervision (again: a process given up on starts afresh)."""
        index = len(self.processes) if launch.name not in self.processes else self.processes[launch.name].index
        log_path = self.log_dir / f"{launch.name}.log" if self.log_dir is not None else None
        previous = self.processes.get(launch.name)
        item = Supervised(launch, index, log_path, restarts=previous.restarts if previous else 0)
        self.processes[launch.name] = item
        return item

    def _spawn(self, item: Supervised) -> None:
        """Start the process and a thread that notes when it answers."""
        item.process = start_process(item.launch, service_environment(self.settings), item.log_path)
        item.started_at, item.ready_at, item.late = time.monotonic(), None, False
        item.generation += 1
        if self.printer is not None:
            self.printer.follow(item.launch.name, item.index, item.process.stdout)
        generation, process = item.generation, item.process

        def note_ready() -> None:
            def stale() -> bool:
                return self.request.stop or item.generation != generation or process.poll() is not None

            # after the first start, a restart is waited for as long as its process runs
            deadline = item.started_at + (self.timeout if self.phase == "starting" else float("inf"))
            if (
                wait_ready(item.launch.url, deadline, stale, ready_path(item.launch.name))
                and item.generation == generation
            ):
                item.ready_at = time.monotonic()

        threading.Thread(target=note_ready, name=f"ready-{item.launch.name}", daemon=True).start()

    def _stop(self) -> None:
        """Stop every process (SIGTERM, SIGKILL after the grace period) and forget the stack."""
        self.phase = "stopping"
        started = [item for item in self.processes.values() if item.process is not None]
        if started:
            self._save()
        self.say("stopping" + (" (Ctrl-C again to kill at once)" if self.printer is not None else ""))
        killed = stop_groups(
            {item.launch.name: item.process.pid for item in started},
            self.grace,
            lambda: self.request.force,
            [item.process for item in started],
            self.say,
        )
        if self.printer is not None:
            self.printer.drain(timeout=5)
        state_path(self.settings).unlink(missing_ok=True)
        names = ", ".join(item.launch.name for item in started) or "nothing"
        self.say(f"stopped {names}" + (f" (killed {', '.join(killed)})" if killed else ""))

    def _save(self) -> None:
        write_state(
            state_path(self.settings),
            StackState(
                os.getpid(),
                self.settings.host,
                [item.member for item in self.processes.values() if item.process is not None or item.last_exit],
                self.phase,
                self.error,
                str(self.log_dir) if self.log_dir is not None else None,
                {name: self.settings.port_of(name) for name in SERVICES}
                | ({MLFLOW_UI: self.mlflow_ui_port} if self.mlflow_ui_port else {}),
            ),
        )


def ask_to_start(settings: Settings, supervisor_pid: int, names: list[str], mlflow_ui_port: int | None) -> None:
    """Leave a request for a running stack's supervisor to start these processes, and wake it."""
    folder = requests_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{os.getpid()}.tmp"
    partial.write_text(json.dumps({"services": names, "mlflow_ui_port": mlflow_ui_port}))
    os.replace(partial, folder / f"{time.time_ns()}-{os.getpid()}.json")
    os.kill(supervisor_pid, signal.SIGUSR1)
