"""Client threads sending a mix of requests to running services, and what they got back."""

from __future__ import annotations

from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class Probe:
    """One kind of request the clients send."""

    name: str
    method: str
    url: str
    json: object = None
    needs_db: bool = True


@dataclass(frozen=True)
class Answer:
    """What one request got: a status and body, or the exception if none came."""

    probe: Probe
    started: float
    ended: float
    status: int | None
    body: object
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def seconds(self) -> float:
        return self.ended - self.started


class Clients:
    """Threads sending requests until stopped: one per lane, each lane a list of probes sent
    round-robin (a lane of its own keeps a write from racing with itself, where that is not the
    point of the test)."""

    def __init__(
        self, lanes: list[list[Probe]], *, timeout: float = 60, pause: float = 0.0, pauses: list[float] | None = None
    ):
        import threading

        self.lanes, self.timeout = [lane for lane in lanes if lane], timeout
        self.pauses = pauses or [pause] * len(lanes)
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            # lanes with the same probes start at different ones
            threading.Thread(target=self._run, args=(lane, self.lanes[:i].count(lane), self.pauses[i]), daemon=True)
            for i, lane in enumerate(self.lanes)
        ]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
        return self.answers

    def _run(self, lane: list[Probe], offset: int, pause: float) -> None:
        import time

        session = requests.Session()
        i = offset
        while not self._stop.is_set():
            probe = lane[i % len(lane)]
            i += 1
            started = time.monotonic()
            try:
                response = session.request(probe.method, probe.url, json=probe.json, timeout=self.timeout)
                try:
                    body = response.json()
                except ValueError:
                    body = response.text[:500]
                answer = Answer(probe, started, time.monotonic(), response.status_code, body)
            except requests.RequestException as error:
                answer = Answer(probe, started, time.monotonic(), None, None, f"{type(error).__name__}: {error}")
                session = requests.Session()
            with self._lock:
                self.answers.append(answer)
            if pause:
                time.sleep(pause)

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.started >= moment]


def is_json_error(answer: Answer, status: int) -> bool:
    """Whether the answer is `status` with the {"error", "message"} body."""
    body = answer.body
    return (
        answer.status == status
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("message"), str)
        and bool(body["message"])
    )


def describe(answer: Answer) -> str:
    return (
        f"{answer.probe.name}: {answer.status or answer.failure} after {answer.seconds:.2f}s: {str(answer.body)[:200]}"
    )
