"""Ports: whether one is taken before starting, and waiting for them to be free after stopping."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterable

from mlops.stack.errors import StackError
from mlops.stack.plan import MLFLOW_UI, Launch


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (the bind gunicorn will try fails)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise StackError(f"cannot bind to host {host!r}: {error.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        # gunicorn binds with SO_REUSEADDR too, so old TIME_WAIT connections do not count as "in use"
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise StackError(f"cannot bind to {host}:{port}: {error.strerror}") from None
    return False


def check_ports(host: str, launches: list[Launch], holders: dict[int, str] | None = None) -> None:
    """Refuse to start if two processes share a port or one of the ports is already taken.

    `holders` names, by port, what an earlier `mlops up` from the same data dir runs there.
    """
    seen: dict[int, str] = {}
    for launch in launches:
        if launch.port in seen:
            raise StackError(f"{seen[launch.port]} and {launch.name} are both configured on port {launch.port}")
        seen[launch.port] = launch.name
    for launch in launches:
        if port_in_use(host, launch.port):
            holder = (holders or {}).get(launch.port)
            owner = f" by an earlier `mlops up` ({holder}); stop it with `mlops down`" if holder else ""
            flag = "--mlflow-ui-port" if launch.name == MLFLOW_UI else f"--{launch.name}-port"
            raise StackError(
                f"port {launch.port} ({launch.name}) on {host} is already in use{owner}. "
                f"Nothing was started. Free the port or choose another one with {flag}."
            )


def wait_ports_free(host: str, ports: Iterable[int], timeout: float) -> list[int]:
    """Wait until nothing listens on the ports; return those still taken when time runs out."""
    deadline = time.monotonic() + timeout
    taken = list(ports)
    while taken:
        taken = [port for port in taken if port_in_use(host, port)]
        if not taken or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return taken
