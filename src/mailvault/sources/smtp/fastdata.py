"""The journaling SMTP server in a thread of its own: :class:`FastController`.

It serves :mod:`.protocol`, a lean server on ``asyncio.Protocol``, and takes the keywords
of the aiosmtpd controller it replaced (``server_hostname``, ``data_size_limit``,
``tls_context``, ``authenticator``, ``timeout`` ...). The listening socket has
``SO_REUSEPORT`` so that several listener processes share one port and the kernel spreads
connections over them (one event loop per core, see :mod:`.acceptors`).

The module keeps its name from the aiosmtpd subclass it held before; why the listener
no longer uses aiosmtpd, with the figures, is in :mod:`.protocol`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading

from mailvault.sources.smtp.commands import unstuff
from mailvault.sources.smtp.protocol import SMTPServer
from mailvault.sources.smtp.session import (
    DATA_SIZE_DEFAULT,
    Authenticator,
    Handler,
    ServerConfig,
)

__all__ = ["FastController", "unstuff"]


class FastController:
    """Starts the server on its own event loop in a thread; ``stop`` ends both."""

    def __init__(
        self,
        handler: Handler,
        hostname: str | None = None,
        port: int = 8025,
        *,
        server_hostname: str | None = None,
        ident: str = "Mailvault journaling",
        data_size_limit: int | None = DATA_SIZE_DEFAULT,
        enable_SMTPUTF8: bool = False,
        decode_data: bool = False,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        authenticator: Authenticator | None = None,
        auth_require_tls: bool = True,
        auth_required: bool = False,
        timeout: float = 300.0,
        ready_timeout: float = 10.0,
    ) -> None:
        if decode_data:
            raise ValueError("the journaling listener keeps messages as bytes (decode_data)")
        self.hostname = hostname or "127.0.0.1"
        self.port = port
        self.ready_timeout = ready_timeout
        self.config = ServerConfig(
            hostname=server_hostname or socket.getfqdn(),
            ident=ident,
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=enable_SMTPUTF8,
            tls_context=tls_context,
            require_starttls=require_starttls,
            authenticator=authenticator,
            auth_require_tls=auth_require_tls,
            auth_required=auth_required,
            timeout=timeout,
        )
        self.server = SMTPServer(handler, self.config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="smtp-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.ready_timeout):
            raise TimeoutError("the SMTP server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self.server.start(self.hostname, self.port))
        except BaseException as error:
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.close())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
        self._thread = None
        self.loop = None
