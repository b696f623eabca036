"""What the reliability suites share: short/long form, the services, the one JSON error shape,
and the sockets a process listens on."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import requests

from mlops.kernel.config import SERVICE_NAMES

# The default form of every suite is short enough for `make test`; the long form (the figures in
# docs/reliability.md) runs with MLOPS_RELIABILITY_LONG=1.
LONG = os.environ.get("MLOPS_RELIABILITY_LONG", "").lower() not in ("", "0", "false", "no")
ALL_SERVICES = SERVICE_NAMES


def pick(short, long):
    """The short-form value, or the long-form one under MLOPS_RELIABILITY_LONG=1."""
    return long if LONG else short


def speaks_inference_protocol(response) -> bool:
    """Whether the answer comes from an Open Inference Protocol route, whose errors are {"error"}."""
    return urlsplit(response.request.url).path.startswith("/v2")


def assert_json_error(response: requests.Response, *statuses: int) -> dict:
    """Assert the answer is an error in the suite's one shape, {"error", "message"}, and return it.

    The Open Inference Protocol's routes (/v2/...) answer the protocol's own shape, {"error"},
    whose string joins our error and message (README, "Open Inference Protocol (V2)").
    """
    where = f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:300]!r}"
    if statuses:
        assert response.status_code in statuses, where
    else:
        assert 400 <= response.status_code < 600, where
    assert response.headers.get("Content-Type", "").startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict), where
    if speaks_inference_protocol(response):
        assert isinstance(body.get("error"), str) and body["error"], where
        return body
    assert {"error", "message"} <= set(body), where
    assert isinstance(body["error"], str) and body["error"], where
    assert isinstance(body["message"], str) and body["message"], where
    return body


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (gunicorn's master and its workers)."""
    tree, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children_file = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            children = [int(c) for c in children_file.read_text().split()]
        except OSError:
            continue
        tree += children
        frontier += children
    return tree


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs that pid or its children listen on, read from /proc."""
    inodes = set()
    for member in process_tree(pid):
        fd_dir = Path(f"/proc/{member}/fd")
        try:
            links = [os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)]
        except OSError:
            continue
        inodes |= {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    found = set()
    for table, decode in (("/proc/net/tcp", _ipv4), ("/proc/net/tcp6", _ipv6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                address, port = local.split(":")
                found.add((decode(address), int(port, 16)))
    return found


def _ipv4(hex_address: str) -> str:
    return ".".join(str(b) for b in reversed(bytes.fromhex(hex_address)))


def _ipv6(hex_address: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))
