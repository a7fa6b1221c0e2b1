"""The exception tree: shallow, one line each."""

from __future__ import annotations

from dataclasses import dataclass


def visible(text: str) -> str:
    """Return ``text`` with every invisible or control character escaped, as ``\\ufeff`` or ``\\x00``:
    a key with a byte order mark in it must not print like the key it imitates."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


class ReadinessError(Exception):
    """Base of every error this service raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, placed as precisely as we can."""

    file: str
    message: str
    line: int | None = None
    site: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = visible(self.file) + (f":{self.line}" if self.line else "")
        parts = [where]
        if self.site:
            parts.append(f"site {visible(self.site)}")
        if self.field:
            parts.append(visible(self.field))
        return ": ".join([*parts, self.message])


class ConfigError(ReadinessError):
    """The config or inventory is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StoreError(ReadinessError):
    """The event store cannot be written or read (full disk, read-only, corrupt)."""
