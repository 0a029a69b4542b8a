"""Helpers for tests that start real daemons on this machine (SLURM, sshd, Ray): free ports and process lookup."""
from __future__ import annotations

import socket
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 now (all bound at once, so they cannot repeat)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def command_lines_with(*markers: bytes) -> list[str]:
    """Command lines (first 200 characters) of running processes that contain every marker."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # not a process, or gone
            continue
        if all(m in cmdline for m in markers):
            found.append(cmdline.replace(b"\0", b" ")[:200].decode(errors="replace"))
    return found
