"""A real HTTP server on 127.0.0.1 for the fakes of market-data services: started and stopped as
a context manager, each GET handed to the subclass's `_serve`, faults queued per key."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, Self, TypeVar

FaultT = TypeVar("FaultT")


class LocalService(Generic[FaultT]):
    """`with Service(...) as service:` serves on 127.0.0.1; point the client at `base_url`."""

    def __init__(self) -> None:
        self._faults: dict[str, deque[FaultT]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _queue_faults(self, key: str, faults: tuple[FaultT, ...]) -> None:
        with self._lock:
            self._faults[key].extend(faults)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read what the service recorded instead."""

            def do_GET(self) -> None:
                service._serve(self)

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError
