"""The host worker: consumes host.<name>, makes the kernel match, reports to the control queue."""

from __future__ import annotations

import logging
import threading
import uuid

from app.celery_app import QueueDrain, host_queue, make_celery, run_solo_worker, task_sender
from app.config import Settings
from app.host_identity import own_host_key
from workers.batching import register_host_tasks
from workers.kernel import HostNet
from workers.tasks import HostAgent

log = logging.getLogger("virtnet.worker")
#: how often the worker checks that each network's dnsmasq still runs
SUPERVISE_SECONDS = 0.5


def _heartbeats(agent: HostAgent, every: float, stop: threading.Event) -> None:
    registering = True
    while not stop.is_set():
        try:
            agent.send_heartbeat(registering=registering)
            registering = False
        except Exception:  # broker briefly away: keep trying, the host shows down meanwhile
            log.exception("heartbeat failed")
        stop.wait(every)


def _supervise(agent: HostAgent, stop: threading.Event) -> None:
    while not stop.wait(SUPERVISE_SECONDS):
        try:
            agent.watch()
        except Exception:  # the next round retries; a failing restart must not end the loop
            log.exception("supervising dnsmasq failed")


def run_host_worker(
    settings: Settings, *, host: str | None, netns: str | None, underlay: str | None = None
) -> int:
    import ipaddress

    from app.conf.common import HOST_NAME_RE

    name = host or settings.host_name
    if not HOST_NAME_RE.fullmatch(name):
        from app.config import ConfigError

        raise ConfigError(f"--host {name!r}: must be 1-63 letters, digits, '.', '_' or '-'")
    key = own_host_key(settings, name)
    if key is None:
        from app.config import ConfigError

        raise ConfigError(
            f"VIRTNET_HOST_KEY is not set: run 'virtnet host-key {name}' where the control "
            "worker runs (it needs VIRTNET_REPORT_SECRET) and give this worker its output"
        )
    underlay = underlay or settings.underlay
    if underlay:
        try:
            underlay = str(ipaddress.ip_address(underlay))
        except ValueError:
            from app.config import ConfigError

            raise ConfigError(f"--underlay {underlay!r}: not an IPv4 or IPv6 address") from None
    celery = make_celery(settings, host=name)
    state_dir = settings.state_dir / "hosts" / name
    agent = HostAgent(
        network=lambda: HostNet(netns, state_dir),
        send=task_sender(celery, declare=False),
        host=name,
        worker_id=uuid.uuid4().hex,
        key=key,
        state_dir=state_dir,
        underlay=underlay,
    )
    agent.probe()
    # the bundles waiting behind the one the worker is given run with it (workers.batching)
    drain = QueueDrain(celery, host_queue(name))
    register_host_tasks(celery, agent, drain)
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeats,
        args=(agent, settings.heartbeat_seconds, stop),
        name="heartbeat",
        daemon=True,
    )
    beat.start()
    threading.Thread(target=_supervise, args=(agent, stop), name="supervise", daemon=True).start()
    try:
        run_solo_worker(celery, queues=host_queue(name), node=f"host-{name}@%h")
    finally:
        stop.set()
        drain.close()
        agent.close()
    return 0
