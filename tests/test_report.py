"""``rmaplab draw`` and ``rmaplab report``: pictures of the design structures
and the per-scenario HTML page.  What could be wrong: a walk picture that
hides a missed mapping, a page that does not render, numbers in the page that
are not the model's."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from rmaplab.cli import main
from rmaplab.report.draw import draw, picture, run_to
from rmaplab.report.html import report_page
from rmaplab.scenario.parse import parse_file

ROOT = Path(__file__).resolve().parents[1]
S01 = ROOT / "scenarios/reviewer/s01-split-inside-large-folio.scn"
EXAMPLE = ROOT / "scenarios/example.scn"


def test_flawed_design_picture_shows_the_missed_pages() -> None:
    """S1 on lazy-single-address: after the split (line 18) only the first
    address of the large folio is looked at; the picture must say that pages
    100..511 are mapped but not found (expected result first)."""
    sc = parse_file(str(S01))
    txt = draw(sc, "lazy-single-address", 18, "txt", 1)
    assert "MISSED" in txt
    missed = [ln for ln in txt.splitlines() if "MISSED" in ln]
    assert any("page 100" in ln for ln in missed), missed
    # the correct reading finds every page and says so
    ok = draw(sc, "lazy", 18, "txt", 1)
    assert "MISSED" not in ok and "found: P0 page 0" in ok and "page 511" in ok


def test_picture_nodes_are_the_model_objects() -> None:
    """Every VMA of every mm and every live anon_vma appears once."""
    sc = parse_file(str(EXAMPLE))
    m, where = run_to(sc, "classic", 16)
    pic = picture(m, where)
    txt = draw(sc, "classic", 16, "txt")
    nvmas = sum(len(mm.vmas) for mm in m.mms.values())
    assert len(re.findall(r"^    vma\d+: VMA", txt, re.M)) == nvmas
    live_av = m.design.memory()["anon_vma"][0]
    assert len(re.findall(r"^    av\d+: anon_vma", txt, re.M)) == live_av
    assert pic.title.startswith("line 16")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
def test_dot_output_is_valid_graphviz(tmp_path: Path) -> None:
    sc = parse_file(str(EXAMPLE))
    for design in ("classic", "lazy", "cowctx"):
        dot = draw(sc, design, 16, "dot")
        r = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "<svg" in r.stdout


def test_draw_rejects_a_line_past_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["draw", "--at", "999", "--format", "txt", str(S01)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "999" in err[0] and "ends at line" in err[0]


def test_report_memory_is_the_models_at_the_peak() -> None:
    """The page's memory table holds, per design, the model's bytes after the
    line it names as the peak."""
    sc = parse_file(str(EXAMPLE))
    page = report_page(sc, ["classic", "lazy"], [])
    peaks = dict(re.findall(r"(\w+): line (\d+)", page.split("<h2>Live")[0]))
    assert set(peaks) == {"classic", "lazy"}
    for design, line in peaks.items():
        m, _ = run_to(sc, design, int(line))
        kb = m.design.memory()["anon_vma"][1] / 1024
        table = page.split("<h2>Memory at the peak</h2>")[1].split("</table>")[0]
        row = re.search(r"<tr><td>anon_vma</td>(.*?)</tr>", table)
        assert row is not None
        cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
        col = {"classic": 0, "lazy": 1}[design]
        assert float(cells[col]) == pytest.approx(kb, abs=0.005)
    assert page.count("<svg") >= 3  # live-object charts and the walk histogram


def _png_rows(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the defiltered-enough rows of an 8-bit RGB(A) PNG
    (only the filter byte is dropped: enough to tell a blank image)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 3
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, _depth, colour = struct.unpack(">IIBB", data[:10])
            bpp = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    return width, height, [raw[i * stride + 1:(i + 1) * stride] for i in range(height)]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium not installed")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The page of a one-app Android workload (the shipped smaps dumps)
    loads without a console error and draws something: the screenshot is
    not blank (several rows differ from the background)."""
    out = tmp_path / "out"
    out.mkdir()
    scn = tmp_path / "android1.scn"
    assert main(["workload", "android", "--apps", "1", "--out", str(scn)]) == 0
    assert main(["report", "--quiet", "--out", str(out), "--designs", "classic,lazy,cowctx",
                 "--at", "5", str(scn)]) == 0
    page = out / "android1.html"
    assert page.read_text().count("<svg") >= 4  # charts and the picture
    png = tmp_path / "shot.png"
    r = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
         f"--screenshot={png}", "--enable-logging=stderr", "--v=0", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert png.exists(), r.stderr[-2000:]
    console = [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln]
    assert not console, console
    width, height, rows = _png_rows(png.read_bytes())
    assert (width, height) == (1000, 1400)
    blank = rows[-1]
    assert sum(row != blank for row in rows) > 200


PICTURES = sorted((ROOT / "docs" / "pictures").glob("*.svg"))


def test_committed_pictures_exist() -> None:
    assert len(PICTURES) >= 10


@pytest.mark.parametrize("svg", PICTURES, ids=lambda p: p.stem)
def test_committed_picture_shows_the_missed_mapping(svg: Path) -> None:
    """Each docs/pictures/SCENARIO--DESIGN.svg (scripts/draw_pictures.py) is
    drawn at the line where `rmaplab check` first fails DESIGN on SCENARIO,
    and both it and the same state drawn now as text mark a MISSED run."""
    from rmaplab.check import check_scenario

    scn, design = svg.stem.split("--")
    sc = parse_file(str(ROOT / "scenarios" / "reviewer" / f"{scn}.scn"))
    v = check_scenario(sc, design)
    assert v is not None and v.line > 0
    m = re.search(r"folio (\d+)", v.what)
    txt = draw(sc, design, v.line, "txt", int(m.group(1)) if m else None)
    assert "MISSED" in txt
    assert "MISSED" in svg.read_text() and f"line {v.line}" in svg.read_text()


def test_check_explain_draws_the_failing_step(capsys: pytest.CaptureFixture[str]) -> None:
    """``check --explain``: under the VIOLATION line, the state after the
    failing line with the walk's MISSED run; nothing extra when all pass."""
    assert main(["check", "--quiet", "--explain", "--design", "lazy-single-address",
                 str(S01)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("VIOLATION:") and "line 18" in out[0]
    body = out[1:-1]
    assert body[0].strip().startswith("after line 18")
    assert any("MISSED: P0 page 100" in ln for ln in body)
    assert main(["check", "--quiet", "--explain", "--design", "lazy", str(S01)]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("PASS")
