"""Fixtures shared by the test modules of monitor/."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An Ed25519 signing key pair made by `readiness audit keygen` (private, public), one per test module."""
    directory = tmp_path_factory.mktemp("keys")
    assert main(["audit", "keygen", "-o", str(directory / "committee")]) == 0
    return directory / "committee.key", directory / "committee.pub"
