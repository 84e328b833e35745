"""Shared fixtures: the scenario corpus and the live-kernel gate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "scenarios" / "corpus"


def corpus_files() -> list[Path]:
    """Corpus scenarios that have a recorded kernel output beside them."""
    return sorted(p for p in CORPUS.glob("*.scn") if p.with_suffix(".out").exists())


def kernel_reason() -> str | None:
    """Why live-kernel tests must skip here (None: they can run)."""
    if os.environ.get("RMAPLAB_NO_KERNEL"):
        return "RMAPLAB_NO_KERNEL is set"
    from rmaplab.kernel.counters import unavailable_reason

    return unavailable_reason("trace")


@pytest.fixture
def live_kernel() -> None:
    why = kernel_reason()
    if why:
        pytest.skip(f"live kernel unavailable: {why}")
