"""Offline click-log simulation: simulated users with click models query real images."""

from __future__ import annotations

__all__: list[str] = []
