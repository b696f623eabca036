"""gunicorn settings every service runs with (`--config python:mlops.kernel.gunicorn_config`)."""

from __future__ import annotations

import json

from gunicorn import util


def post_worker_init(worker) -> None:
    """Make the requests gunicorn refuses itself answer JSON errors, like everything else.

    A request line over gunicorn's limit, oversized headers or an unparsable request never reach
    Flask; gunicorn writes an HTML page through util.write_error, its only hook for that page.
    """
    util.write_error = write_json_error


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Write a complete HTTP response carrying {"error", "message"} and close (as gunicorn does)."""
    body = json.dumps({"error": reason, "message": mesg}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
