"""The serve command's check that its port is free."""

from __future__ import annotations

import socket

import pytest
import typer

from superior_one.cli import _ensure_port_free


def test_serve_port_check_rejects_listening_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(typer.BadParameter, match="already in use"):
            _ensure_port_free("127.0.0.1", port)


def test_serve_port_check_accepts_port_with_closed_connections() -> None:
    # A server stopped a moment ago leaves its side of each connection in TIME_WAIT.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first, so its port enters TIME_WAIT
        client.close()

    _ensure_port_free("127.0.0.1", port)
