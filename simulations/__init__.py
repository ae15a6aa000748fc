"""Offline click-log simulation: simulated users with click models query real images."""

from __future__ import annotations

from simulations import click_models

__all__ = ["click_models"]
