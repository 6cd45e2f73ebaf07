"""The API's uvicorn server and, for `VIRTNET_API_WORKERS` > 1, its worker processes.

uvicorn's server wakes ten times a second for its housekeeping (the Date header, the exit
flag): 0.2 % of a core per process at idle, most of what the API costs when nothing is asked
of it (issue 12 wants API, control and host worker together under 1 %). `QuietServer` does
it once a second and wakes at once when told to exit.

Several workers are our own spawned processes sharing one listening socket rather than
uvicorn's `Multiprocess`, whose workers always run uvicorn's own server class, and whose
supervisor also pings each worker over a pipe twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("virtnet.api")

#: how long uvicorn lets open requests (an event stream never ends by itself) finish on exit
GRACEFUL_SECONDS = 3
#: a dead worker is noticed within this and started again
CHECK_SECONDS = 1.0
#: a worker that dies sooner than this after its start is not started again at once
RESTART_BACKOFF = 1.0


class QuietServer(uvicorn.Server):
    """uvicorn's server with a 1 s housekeeping tick that an exit request cuts short."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None = None):
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_asked: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit_asked = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000  # every tick is a whole second: on_tick's % 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_asked.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._on_exit is not None:
            self._on_exit()
        super().handle_exit(sig, frame)
        loop, asked = self._loop, self._exit_asked
        if loop is not None and asked is not None:
            loop.call_soon_threadsafe(asked.set)


def config(app: Any, host: str, port: int, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        **extra,
    )


def run_workers(sock: socket.socket, count: int, on_exit: Callable[[], None] | None = None) -> None:
    """``count`` processes serving the app on ``sock``, each building it from the same
    VIRTNET_* environment; a dead one is started again; SIGTERM or SIGINT stops them all
    gracefully (each lets its open requests finish, as one server does)."""
    stop = threading.Event()

    def asked_to_stop(_sig: int, _frame: FrameType | None) -> None:
        if not stop.is_set() and on_exit is not None:
            on_exit()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, asked_to_stop)
    spawn = multiprocessing.get_context("spawn")

    def started() -> BaseProcess:
        worker = spawn.Process(target=_worker, args=(sock, os.getpid()))
        worker.start()
        return worker

    workers = [started() for _ in range(count)]
    try:
        while not stop.wait(CHECK_SECONDS):
            for i, worker in enumerate(workers):
                if worker.is_alive() or stop.is_set():
                    continue
                log.warning("API worker %s ended (%s); starting one", worker.pid, worker.exitcode)
                stop.wait(RESTART_BACKOFF)
                workers[i] = started()
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for worker in workers:
            worker.join(GRACEFUL_SECONDS + 2)
            if worker.is_alive():
                worker.kill()
                worker.join()


def _worker(sock: socket.socket, parent: int) -> None:
    from app.api.main import create_app
    from app.supervisor import die_with_parent, freeze_startup_objects

    die_with_parent()  # a SIGKILLed `virtnet api` leaves no worker behind
    if os.getppid() != parent:  # it died before that took effect
        return
    host, port = sock.getsockname()[:2]
    app = create_app()  # from the VIRTNET_* environment, as the parent's was
    freeze_startup_objects()
    QuietServer(config(app, host, port)).run(sockets=[sock])
