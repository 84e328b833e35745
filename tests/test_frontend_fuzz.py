"""The front end under arbitrary input: every parser (scenario, litmus,
expect lines, smaps dumps, campaign checkpoints, traces) gets random bytes
and mutated valid files through the CLI.  Each run must end with exit 0 or
1 (the input was valid), or exit 2 with exactly one line on stderr naming
the file; never a traceback (an exception escaping ``main``), never a hang
(hypothesis' deadline bounds each input).

The suite runs a bounded number of examples; a longer campaign:
``RMAPLAB_FRONTEND_EXAMPLES=5000 python3 -m pytest -q tests/test_frontend_fuzz.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rmaplab.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("RMAPLAB_FRONTEND_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=10_000, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _seed_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode()


@st.composite
def mutated(draw: st.DrawFn, seed: str) -> bytes:
    """A valid file with a few edits: lines dropped, duplicated or swapped,
    tokens replaced by odd ones, bytes flipped."""
    lines = seed.splitlines(keepends=True)
    odd = st.sampled_from(["", "-1", "0", "99999999999999999999", "٣", "\x0c", "\x00", "..",
                           "@", "rw", "P9", "#", "\ufeff", "1e9", "0x10", "é" * 300, " ", "\t"])
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "token", "byte"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "token":
            words = lines[i].split(" ")
            k = draw(st.integers(0, len(words) - 1))
            words[k] = draw(odd)
            lines[i] = " ".join(words)
        else:
            b = bytearray(lines[i].encode())
            if b:
                b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
            lines[i] = b.decode("latin-1")
    return "".join(lines).encode("utf-8", "surrogateescape")


def inputs(seed_path: Path) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutated(_seed_text(seed_path)))


def run_cli(argv: list[str], named: Path) -> int:
    """``main(argv)`` in-process; exit 2 must come with one line naming ``named``."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    assert rc in (0, 1, 2), (rc, err.getvalue())
    if rc == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1, lines
        assert str(named) in lines[0] or named.name in lines[0], lines
    return rc


def _write(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


_BASE: list[Path] = []


def _tmp(tag: str) -> Path:
    """A scratch directory per parser, under one temporary directory made on
    first use and removed at exit (tests run in-process, many inputs each)."""
    if not _BASE:
        _BASE.append(Path(tempfile.mkdtemp(prefix="rmaplab-frontend-")))
        atexit.register(shutil.rmtree, _BASE[0], True)
    d = _BASE[0] / tag
    d.mkdir(exist_ok=True)
    return d


@SETTINGS
@given(inputs(ROOT / "scenarios" / "example.scn"))
def test_scenario_parser(data: bytes) -> None:
    p = _write(_tmp("scn"), "x.scn", data)
    run_cli(["run", str(p)], p)


@SETTINGS
@given(inputs(ROOT / "scenarios" / "reviewer" / "s01-split-inside-large-folio.scn"))
def test_expect_lines(data: bytes) -> None:
    p = _write(_tmp("exp"), "x.scn", data)
    run_cli(["verdicts", "--designs", "classic,lazy", str(p)], p)


@SETTINGS
@given(inputs(ROOT / "scenarios" / "litmus" / "fork-vs-walk.lit"))
def test_litmus_parser(data: bytes) -> None:
    p = _write(_tmp("lit"), "x.lit", data)
    run_cli(["explore", "--quiet", "--design", "classic", "--random", "2", str(p)], p)


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 mutated("\n".join(_seed_text(
                     ROOT / "src/rmaplab/workload/data/android-smaps/app-demo.smaps.gz")
                     .splitlines()[:120]) + "\n")))
def test_smaps_parser(data: bytes) -> None:
    d = _tmp("smaps")
    p = _write(d, "x.smaps", data)
    run_cli(["workload", "android", "--apps", "1", "--smaps", str(d), "--out",
             str(d / "out.scn")], p)


def _real_checkpoint() -> str:
    """campaign.json of a real 20-op campaign (made once, then mutated)."""
    d = _tmp("camp-seed")
    cp = d / "campaign.json"
    if not cp.exists():
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            assert main(["fuzz", "--design", "classic", "--ops", "20", "--quiet", "--out",
                         str(d)]) in (0, 1)
    json.loads(cp.read_text())
    return cp.read_text()


@settings(SETTINGS, deadline=60_000)  # a well-formed edit may resume a 2,000-op shard
@given(st.one_of(st.binary(max_size=200), st.deferred(lambda: mutated(_real_checkpoint()))))
def test_campaign_checkpoint(data: bytes) -> None:
    """A resumed campaign reads its checkpoint: a mutated one is refused
    with one line (or, when still valid, resumed; --ops 20 is already done)."""
    d = _tmp("camp")
    for f in d.iterdir():
        if f.is_file():
            f.unlink()
    p = _write(d, "campaign.json", data)
    run_cli(["fuzz", "--design", "classic", "--ops", "20", "--quiet", "--out", str(d)], p)


@SETTINGS
@given(st.one_of(st.binary(max_size=300),
                 mutated(_seed_text(ROOT / "tests/data/traces/mmfork.trace.gz"))))
def test_trace_reader(data: bytes) -> None:
    d = _tmp("trace")
    raw = data if data[:2] == b"\x1f\x8b" else gzip.compress(data)
    p = _write(d, "x.trace.gz", raw)
    run_cli(["replay", "--quiet", "--no-walks", "--designs", "classic", str(p)], p)
