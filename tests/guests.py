"""Tiny QEMU guests for tests: Debian's kernel from /boot, a busybox initramfs built here,
and a serial console on a pipe to drive busybox's shell."""

from __future__ import annotations

import contextlib
import glob
import lzma
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

BUSYBOX = "/bin/busybox"
QEMU = "qemu-system-x86_64"
#: what virtio-net needs, in load order (Debian builds all of them as modules)
MODULES = (
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
)
READY = "VIRTNET-GUEST-READY"
#: a short boot: no ACPI tables to walk, no delay-loop calibration, one serial port
CMDLINE = (
    "console=ttyS0 quiet panic=-1 mitigations=off acpi=off lpj=4000000 no_timer_check "
    "tsc=reliable 8250.nr_uarts=1 i8042.noaux i8042.nokbd i8042.nopnp"
)
INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
for m in {modules}; do insmod /lib/$m; done
ip link set lo up
for arg in $(cat /proc/cmdline); do
  case $arg in vnip=*) ip link set eth0 up; ip addr add ${{arg#vnip=}} dev eth0;; esac
done
stty -echo
echo {ready}
exec sh
"""


def kernel() -> tuple[str, str] | None:
    """(vmlinuz, modules dir) of the newest Debian kernel in /boot with virtio_net."""
    for path in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        release = path.removeprefix("/boot/vmlinuz-")
        mods = f"/lib/modules/{release}/kernel"
        if all(os.path.exists(f"{mods}/{m}") for m in MODULES) and os.access(path, os.R_OK):
            return path, mods
    return None


def _dynamic(elf: bytes) -> bool:
    """True for an ELF64 program with an interpreter (PT_INTERP): not usable alone in an
    initramfs."""
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    size, count = int.from_bytes(elf[0x36:0x38], "little"), int.from_bytes(elf[0x38:0x3A], "little")
    return any(
        int.from_bytes(elf[phoff + i * size : phoff + i * size + 4], "little") == 3
        for i in range(count)
    )


def available() -> str | None:
    """Why guests cannot boot here, or None when they can."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is missing (package qemu-system-x86)"
    if not os.path.exists(BUSYBOX) or _dynamic(Path(BUSYBOX).read_bytes()):
        return "no static busybox (package busybox-static)"
    if kernel() is None:
        return "no kernel with virtio_net in /boot (package linux-image-amd64)"
    return None


def extract_vmlinux(out: Path) -> Path:
    """The uncompressed kernel (ELF), which QEMU starts at its PVH entry point: no firmware
    and no decompression in the emulated CPU, the slowest parts of a TCG boot (~20 s)."""
    found = kernel()
    assert found is not None
    data = Path(found[0]).read_bytes()
    start = data.find(b"\xfd7zXZ\x00")  # Debian builds CONFIG_KERNEL_XZ
    if start < 0:
        raise AssertionError(f"{found[0]} is not an xz-compressed kernel")
    out.write_bytes(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:]))
    return out


def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 1) -> bytes:
    """One 'newc' cpio member, the format the kernel unpacks an initramfs from."""
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    header = b"070701" + b"".join(f"{f:08X}".encode() for f in fields)
    out = header + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)


def build_initramfs(path: Path) -> Path:
    found = kernel()
    assert found is not None
    _, mods = found
    names = [os.path.basename(m) for m in MODULES]
    members = [("bin", 0o40755, b""), ("lib", 0o40755, b"")]
    members.append(("init", 0o100755, INIT.format(modules=" ".join(names), ready=READY).encode()))
    members.append(("bin/busybox", 0o100755, Path(BUSYBOX).read_bytes()))
    for module, name in zip(MODULES, names, strict=True):
        members.append((f"lib/{name}", 0o100644, Path(f"{mods}/{module}").read_bytes()))
    blob = b"".join(
        _cpio_entry(name, mode, data, ino) for ino, (name, mode, data) in enumerate(members, 1)
    )
    path.write_bytes(blob + _cpio_entry("TRAILER!!!", 0))
    return path


class Guest:
    """A QEMU guest in network namespace ``ns``, its serial console on stdin/stdout."""

    def __init__(
        self, ns: str, vmlinux: Path, initramfs: Path, address: str, netargs: list[str]
    ) -> None:
        argv = [
            *("ip", "netns", "exec", ns, QEMU, "-accel", "tcg", "-m", "160", "-smp", "1"),
            *("-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio"),
            *("-no-reboot", "-kernel", str(vmlinux), "-initrd", str(initramfs)),
            *("-append", f"{CMDLINE} vnip={address}"),
            *netargs,
        ]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.output = ""
        self._lock = threading.Condition()
        self._count = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            with self._lock:
                self.output += chunk.decode(errors="replace")
                self._lock.notify_all()

    def expect(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not (found := re.compile(pattern).search(self.output, start)):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"guest never printed {pattern!r}:\n{self.output[-2000:]}")
                self._lock.wait(min(left, 0.5))
            return found

    def wait_ready(self, timeout: float = 60) -> None:
        self.expect(READY, timeout)

    def run(self, command: str, timeout: float = 20) -> tuple[int, str]:
        """Run ``command`` in the guest's shell; its exit code and output."""
        self._count += 1
        marker = f"__END{self._count}_"
        start = len(self.output)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}; echo {marker}$?\n".encode())
        self.proc.stdin.flush()
        found = self.expect(rf"{marker}(\d+)", timeout, start)
        return int(found.group(1)), self.output[start : found.start()]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=10)
