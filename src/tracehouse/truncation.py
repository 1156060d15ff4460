"""Cutting text to a size cap with a visible marker: one rule for the recording side (content
capture) and the receiving side (attribute value limits)."""

from __future__ import annotations


def truncate(text: str, max_bytes: int) -> tuple[str, int | None]:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes with a visible marker, and the
    original size in bytes; or ``text`` and None when it fits."""
    size = len(text.encode())
    if size <= max_bytes:
        return text, None
    marker = f"…[truncated by tracehouse: {size} bytes]"
    keep = max(0, max_bytes - len(marker.encode()))
    return text.encode()[:keep].decode(errors="ignore") + marker, size
