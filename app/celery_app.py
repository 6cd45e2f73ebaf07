"""The one Celery application; API, control worker and host workers all build it from settings."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from app.config import Settings
from app.messages.names import (  # noqa: F401  (re-exported: the names' old home)
    APPLY_BUNDLE,
    APPLY_PORTS,
    CONTROL_QUEUE,
    HEARTBEAT,
    HEARTBEAT_QUEUE,
    REALISE_NETWORK,
    RECONCILE_HOST,
    REMOVE_NETWORK,
    REPORT_APPLIED,
    REPORT_LEASES,
    REPORT_OVERLAY,
    REPORT_PORTS,
    REPORT_REALISATION,
    SYNC_OVERLAY,
    host_queue,
    queue_host,
)

log = logging.getLogger("virtnet.broker")


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    url = settings.effective_broker_url
    if not url.startswith("filesystem://"):
        return url, {}
    # kombu's filesystem transport wants folders, not a URL path: one folder is the whole broker.
    folder = Path(urlsplit(url).path or settings.state_dir / "broker")
    for sub in ("processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": settings.broker_poll_seconds,
    }


def redis_client_url(url: str) -> str:
    """kombu's `redis+socket:///path` as redis-py spells it (`unix:///path`)."""
    return "unix://" + url.removeprefix("redis+socket://") if url.startswith("redis+") else url


def make_celery(settings: Settings, *, host: str | None = None) -> Celery:
    """``host``: the Celery app of that host's worker, which keeps its bookkeeping of
    unacknowledged messages under its own Redis keys (its broker user may touch no others)."""
    url, transport_options = broker_options(settings)
    if url.startswith("redis"):
        # one Redis list per queue (no priority sub-queues): exact key names for ACL users
        transport_options["priority_steps"] = [0]
        if host is not None:
            queue = host_queue(host)
            transport_options.update(
                unacked_key=f"unacked:{queue}",
                unacked_index_key=f"unacked_index:{queue}",
                unacked_mutex_key=f"unacked_mutex:{queue}",
            )
    celery = Celery("virtnet", broker=url, set_as_current=False)
    celery.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=CONTROL_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_heartbeat=0,
        # no remote control: its broadcast channels would be one more way in for any client
        worker_enable_remote_control=False,
    )
    return celery


def run_solo_worker(celery: Celery, *, queues: str, node: str) -> None:
    """Consume ``queues`` (comma-separated) in this process, one task at a time (the solo
    pool: the workers' own state is in this process), until the worker is stopped."""
    from celery.signals import worker_ready

    from app.supervisor import freeze_startup_objects

    # once Celery has set itself up too: nothing of the start-up is walked by a full collection
    worker_ready.connect(lambda **_: freeze_startup_objects(), weak=False)
    celery.worker_main(
        [
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "-n",
            node,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]
    )


def task_sender(
    celery: Celery, *, declare: bool = True
) -> Callable[[str, dict[str, Any], str], None]:
    """A sender that keeps one broker connection per thread instead of one per message.

    ``declare=False``: only push (host workers, whose broker user may write the control
    queues but not read them; their consumer declares them)."""
    local = threading.local()

    def send(name: str, kwargs: dict[str, Any], queue: str) -> None:
        producer = getattr(local, "producer", None)
        if producer is None:
            connection = celery.connection_for_write()
            producer = local.producer = celery.amqp.Producer(connection)
            local.connection = connection
        options: dict[str, Any] = {} if declare else {"declare": []}
        try:
            # a short kwargsrepr spares Celery a repr() of the whole desired state per message
            celery.send_task(
                name,
                kwargs=kwargs,
                queue=queue,
                producer=producer,
                argsrepr="()",
                kwargsrepr=f"<{len(kwargs)} kwargs>",
                **options,
            )
        except Exception:
            # after a broker restart this connection stays broken for good (kombu then fails
            # with AttributeError, not a connection error): the next message opens a new one
            local.producer = None
            with contextlib.suppress(Exception):
                local.connection.release()
            raise

    return send


# Taking what waits in a queue along with the message a worker was given (issue 12).
#
# A worker runs one Celery task at a time (``--pool solo``, prefetch 1, acks_late). When it is
# given a message it also takes, without waiting, the messages already queued behind it, and
# handles the lot at once: a host worker as one kernel batch, the control worker in one
# transaction. They are read on a connection of the drain's own, with acknowledgement: kombu
# keeps each in its unacknowledged set (for Redis the same hash the Celery consumer uses,
# ``unacked_key``) until the caller acknowledges it, once the work is done. A worker killed
# halfway leaves them there just as it leaves the message Celery gave it (the periodic resync
# repairs meanwhile); a clean shutdown puts them back.
#
# Not celery-batches: it buffers what the consumer prefetched (the prefetch multiplier raised
# to the batch size or 0) and runs it on a count or a timer, so a lone message on an idle
# queue waits for the timer. Here the first message runs at once, and a batch is only what
# piled up while the worker was busy.

#: most messages taken along with one the worker was given
DRAIN_LIMIT = 256


@dataclass
class Drained:
    """One message taken from the queue: its task name and keyword arguments."""

    name: str
    kwargs: dict[str, Any]
    message: Any = None

    def ack(self) -> None:
        if self.message is not None:
            self.message.ack()


def task_of(message: Any) -> tuple[str, dict[str, Any]] | None:
    """(task name, kwargs) of a Celery task message (protocol 2, or 1), None if it is not."""
    try:
        body = message.decode()
    except Exception:  # not JSON (we accept nothing else): Celery would refuse it too
        log.exception("a message that is not JSON was taken from the queue")
        return None
    headers = message.headers or {}
    if "task" in headers and isinstance(body, list | tuple) and len(body) == 3:
        kwargs = body[1]
        name = headers["task"]
    elif isinstance(body, dict) and "task" in body:  # protocol 1
        kwargs, name = body.get("kwargs") or {}, body["task"]
    else:
        return None
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        return None
    return name, kwargs


class QueueDrain:
    """Takes, without waiting, what waits in ``queues`` (in that order of preference)."""

    def __init__(self, celery: Celery, *queues: str, limit: int = DRAIN_LIMIT) -> None:
        self.celery, self.queues, self.limit = celery, queues, limit
        self._connection: Any = None
        self._broken = False  # reset once what was taken is acknowledged
        self._lock = threading.Lock()

    def _channel(self) -> Any:
        if self._connection is None:
            self._connection = self.celery.connection_for_read()
        return self._connection.default_channel

    def take(self, limit: int | None = None) -> list[Drained]:
        """Up to ``limit`` messages waiting now, oldest first. A broker that does not answer
        gives none: the messages stay queued, and the worker handles them one by one."""
        limit = self.limit if limit is None else limit
        out: list[Drained] = []
        with self._lock:
            try:
                channel = self._channel()
                for queue in self.queues:
                    while len(out) < limit:
                        message = channel.basic_get(queue, no_ack=False)
                        if message is None:
                            break
                        task = task_of(message)
                        if task is None:
                            log.error("refused a message in %s that is no task of ours", queue)
                            message.ack()
                            continue
                        out.append(Drained(task[0], task[1], message))
            except Exception:
                log.exception("could not read the queue; going on with what was taken")
                self._broken = True
        return out

    def ack(self, drained: list[Drained]) -> None:
        """Acknowledge what was taken, once its work is done. One that cannot be (the broker
        went away) is given again later; running it twice is harmless."""
        with self._lock:
            for item in drained:
                try:
                    item.ack()
                except Exception:
                    log.exception("could not acknowledge a message; it will come again")
                    self._broken = True
                    break
            if self._broken:
                self._reset()

    def _reset(self) -> None:
        connection, self._connection, self._broken = self._connection, None, False
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()

    def close(self) -> None:
        """Put back what was taken and not acknowledged (kombu restores it on close)."""
        with self._lock:
            self._reset()
