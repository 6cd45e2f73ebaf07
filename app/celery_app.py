"""The one Celery application; API, control worker and host workers all build it from settings."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
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
