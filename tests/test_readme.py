"""The README's generated tables are the current output of their commands."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("refresh_readme",
                                              ROOT / "scripts" / "refresh_readme.py")
refresh = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(refresh)  # type: ignore[union-attr]


def block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0].strip()


def test_generated_blocks_are_current() -> None:
    with tempfile.TemporaryDirectory() as t:
        new = refresh.blocks(Path(t))
    for name, body in new.items():
        assert block(name) == body.strip(), \
            f"README block {name} is stale: run scripts/refresh_readme.py"
    if "compare-android" not in new:
        pytest.skip("no smaps dumps here: the Android blocks were not regenerated")


def test_readme_setup_commands_match_ci() -> None:
    """The README's test command is what .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "    python3 -m pytest -q\n" in readme
    assert "python3 -m pytest -q" in ci
    setup = "python3 -m pip install -e '.[test]' && python3 -m rmaplab run scenarios/example.scn"
    assert setup in readme
