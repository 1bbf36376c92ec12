"""Counts and lists in log lines and messages: "1 row", "2 rows"; "a, b, c, ..."."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["counted", "listed"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun in its number (``plural`` when adding an s is wrong)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def listed(items: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` of ``items``, comma-separated, and ", ..." when there are more."""
    return ", ".join(items[:shown]) + (", ..." if len(items) > shown else "")
