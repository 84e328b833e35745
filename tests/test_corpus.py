"""The model reproduces every line recorded from the live kernel.

The recorded-output tests always run; the live-kernel tests re-run each
corpus scenario on this machine's kernel (skipped where it is unavailable)
and retry a mismatch a few times, since a single kernel run can be
disturbed by other activity.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import corpus_files

from rmaplab.kernel.record import read_recording
from rmaplab.scenario.output import core_fields
from rmaplab.scenario.parse import parse_file
from rmaplab.scenario.run import run_scenario

FILES = corpus_files()
IDS = [p.stem for p in FILES]


def test_corpus_is_large_enough() -> None:
    predictions = [p for p in FILES if p.name.startswith("p")]
    randoms = [p for p in FILES if p.name.startswith("r")]
    assert len(FILES) >= 60
    assert len(predictions) >= 30
    assert len(randoms) >= 20


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_model_reproduces_recording(path: Path) -> None:
    expected = read_recording(path.with_suffix(".out"))
    assert expected, f"{path}: empty recording"
    got = [core_fields(x) for x in run_scenario(parse_file(path), "classic")]
    assert got == expected


@pytest.mark.kernel
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_live_kernel_reproduces_recording(path: Path, live_kernel: None) -> None:
    from rmaplab.kernel.runner import run_on_kernel

    expected = read_recording(path.with_suffix(".out"))
    sc = parse_file(path)
    got: list[str] = []
    for _attempt in range(3):
        got = run_on_kernel(sc)
        if got == expected:
            return
    assert got == expected
