"""The search service: Litestar endpoints, the experiment engine and durable logs."""

from __future__ import annotations

__all__: list[str] = []
