"""Run an ASGI app with uvicorn on 127.0.0.1 in a background thread.

Tests start a simulator with ``with ServerThread(app) as server:`` and talk to
``server.base_url``; the port is picked by the operating system.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_S = 10.0


class ServerThread:
    """An ASGI app served by uvicorn in a daemon thread, on its own event loop."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_shutdown_s: int = 1,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._graceful_shutdown_s = graceful_shutdown_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Bind the socket, start serving, and wait until uvicorn accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        self._socket = sock
        self.port = sock.getsockname()[1]

        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="on",
            # Bounds the wait for requests a fault left sleeping at shutdown.
            timeout_graceful_shutdown=self._graceful_shutdown_s,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-sim", daemon=True
        )
        self._thread = thread
        thread.start()

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError(f"uvicorn did not start on {self.base_url}")

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STARTUP_TIMEOUT_S + self._graceful_shutdown_s)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
