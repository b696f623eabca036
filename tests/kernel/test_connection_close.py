"""How a worker closes an answered connection (mlops.kernel.gunicorn_config.close_unless_unread):
at once when the client sent nothing left unread, with gunicorn's lingering close otherwise."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mlops.kernel.gunicorn_config import close_unless_unread


@contextmanager
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A client socket and the server's accepted end of it, on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        try:
            yield client, server
        finally:
            client.close()
            server.close()


def lingering_close_recorder(calls: list[socket.socket]):
    def lingering_close(sock, *_args, **_kwargs):
        calls.append(sock)
        sock.close()

    return lingering_close


def test_an_answered_connection_whose_request_was_read_is_closed_without_waiting_for_the_client():
    lingered: list[socket.socket] = []
    close = close_unless_unread(lingering_close_recorder(lingered))
    with connection() as (client, server):
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert server.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
        server.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        started = time.monotonic()
        close(server)  # the client keeps its side open: nothing to wait for
        assert time.monotonic() - started < 0.5
        assert lingered == []
        assert server.fileno() == -1
        client.settimeout(5)
        received = b""
        while chunk := client.recv(100):  # the whole answer, then end of stream (FIN, not a reset)
            received += chunk
        assert received.endswith(b"\r\n\r\nok")


def test_a_connection_with_request_data_left_unread_gets_gunicorns_lingering_close():
    lingered: list[socket.socket] = []
    close = close_unless_unread(lingering_close_recorder(lingered))
    with connection() as (client, server):
        client.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.1)  # arrived, and not read: closing now would send a reset
        close(server)
        assert lingered == [server]


def test_a_connection_the_client_already_closed_is_closed_at_once():
    lingered: list[socket.socket] = []
    close = close_unless_unread(lingering_close_recorder(lingered))
    with connection() as (client, server):
        client.shutdown(socket.SHUT_WR)
        time.sleep(0.1)
        close(server)
        assert lingered == [] and server.fileno() == -1
