"""Shared fixtures: the scenario corpus and the live-kernel gate."""

from __future__ import annotations

import os
import shutil
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


def leftovers() -> list[str]:
    """rmaplab's tracefs instances and trace temp dirs on this machine."""
    inst = Path("/sys/kernel/tracing/instances")
    mine = [p.name for p in inst.glob("rmaplab_*")] if inst.is_dir() else []
    return mine + [p.name for p in Path("/tmp").glob("rmaplab-t-*")]


@pytest.fixture
def clean_kernel(live_kernel: None) -> None:
    """The live kernel, with a C compiler for the trace helper and nothing
    of rmaplab's left on the machine (stale leftovers swept first)."""
    from rmaplab.kernel.cleanup import sweep_stale
    from rmaplab.kernel.runner import kernel_lock

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler for the trace helper")
    with kernel_lock():
        sweep_stale()
    assert leftovers() == []


