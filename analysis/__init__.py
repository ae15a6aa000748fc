"""Statistics and reports over experiment logs (simulated or served), in one shared schema."""

from __future__ import annotations

__all__: list[str] = []
