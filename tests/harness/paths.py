"""Where things are in the repository, for tests that read its files or start its commands."""

from __future__ import annotations

from pathlib import Path

from hazardgw.demo import EXAMPLE_SITE

__all__ = ["EXAMPLE_SITE", "PACKS", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the working directory of the processes tests start."""
PACKS = ROOT / "rules" / "packs"
