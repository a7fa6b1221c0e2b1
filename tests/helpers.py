"""Test helpers shared across the suite."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, except under CI=true, where the test must run: fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true but unavailable: {reason}")
    pytest.skip(reason)


def require_root(what: str) -> None:
    """Require root (namespaces, nftables, raw sockets, tmpfs)."""
    require(os.geteuid() == 0, f"{what} needs root")


def require_tool(name: str) -> str:
    """Require a command on PATH (or in /usr/sbin) and return its path."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    require(path is not None, f"{name} is not installed (Debian package)")
    assert path is not None
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the kernel's pick; another process may take it before we do)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
