"""A paced UDP sender and a counting receiver, run in guest namespaces by the rate tests.

python -m tests.kernel.udp_rate send HOST PORT KBYTES_PER_S SECONDS
python -m tests.kernel.udp_rate recv PORT START END   -> bytes received in [START, END)
                                                          seconds after the first datagram
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time

PAYLOAD = 1400


def send(host: str, port: int, rate: int, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data = b"x" * PAYLOAD
    interval = PAYLOAD / (rate * 1000)
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        due = start + sent * interval
        if now < due:
            time.sleep(min(due - now, 0.002))
            continue
        with contextlib.suppress(OSError):  # a full queue drops, as a guest's would
            sock.sendto(data, (host, port))
        sent += 1


def receive(port: int, start: float, end: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(10)
    print("ready", flush=True)
    sock.recv(65536)
    first = time.monotonic()
    total = 0
    sock.settimeout(0.5)
    while time.monotonic() - first < end:
        try:
            n = len(sock.recv(65536))
        except TimeoutError:
            break
        if time.monotonic() - first >= start:
            total += n
    print(total, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        receive(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
