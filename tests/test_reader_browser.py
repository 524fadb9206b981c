"""End to end in headless Chromium: log in, open a case, both series render in Niivue, grade, submit, export."""
from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from nervemuscle.reader.app import ReaderSettings, create_app
from test_reader_support import PASSWORD, running_server, seed_study

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
#: Screenshots go to a temporary folder; set NERVEMUSCLE_DOCS_IMG=docs/img to refresh the documentation's.
DOCS_IMG_ENV = "NERVEMUSCLE_DOCS_IMG"

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed")]


def drawn_fraction(png: bytes) -> float:
    """Fraction of pixels that are not the black background."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    return float((rgb.max(axis=2) > 30).mean())


def coloured_fraction(png: bytes) -> float:
    """Fraction of clearly coloured (not grey) pixels: the label overlay."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    return float((rgb.max(axis=2) - rgb.min(axis=2) > 60).mean())


def browser_login(page, base, username):
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def wait_until(page, expression: str, timeout: float = 30000) -> None:
    """Poll ``expression`` until truthy. Playwright's ``wait_for_function`` compiles its predicate in the page,
    which the reader's Content-Security-Policy (no 'unsafe-eval') forbids; ``evaluate`` runs it over the
    DevTools protocol instead."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def test_read_an_exam_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    app = create_app(ReaderSettings(db_url=f"sqlite:///{tmp_path / 'reader.db'}", data_root=tmp_path / "data"))
    # 144 voxels > display.PREVIEW_MAX_SIZE: each pane shows a 72x96x24 preview first, then the full image.
    sid = seed_study(app, tmp_path / "data", ["reader1"], n_exams=2, shape=(144, 96, 24))
    docs_img = Path(os.environ.get(DOCS_IMG_ENV) or tmp_path / "img")
    docs_img.mkdir(parents=True, exist_ok=True)
    with running_server(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        csp_violations = []
        page.on("console", lambda msg: csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.goto(f"{base}/login")
        page.screenshot(path=str(docs_img / "reader_login.png"))
        browser_login(page, base, "reader1")
        assert page.url.endswith("/worklist")
        page.wait_for_selector("#worklist tbody a")
        page.screenshot(path=str(docs_img / "reader_worklist.png"))
        page.click("#worklist tbody tr:first-child a")
        wait_until(page, "window.nmTiming && window.nmTiming.fullDrawn !== null", timeout=60000)
        assert page.evaluate("window.nmTiming.fullDrawn > window.nmTiming.firstDrawn")
        assert page.evaluate("window.nmViewers.map(nv => Array.from(nv.volumes[0].dims.slice(1, 4)))") == [[144, 96, 24]] * 2
        page.select_option("#slice-type", "axial")
        # Niivue kept only the 2D-slice textures: the gradient texture of 3D rendering was never built.
        assert page.evaluate("window.nmViewers.every(nv => nv.opts.skipGradientTexture && nv.gradientTexture === null)")
        before = {}
        for canvas in ("#gl0", "#gl1"):
            png = page.locator(canvas).screenshot()
            assert drawn_fraction(png) > 0.05, canvas
            before[canvas] = coloured_fraction(png)  # the crosshair only
        assert page.locator("#overlay-select option").all_inner_texts() == ["none", "segmentation"]
        page.select_option("#overlay-select", label="segmentation")  # the label map is added when chosen
        wait_until(page, "window.nmTiming.overlay !== null", timeout=60000)
        for canvas in ("#gl0", "#gl1"):
            assert coloured_fraction(page.locator(canvas).screenshot()) > before[canvas] + 0.02, canvas
        page.select_option("#overlay-select", label="none")
        page.wait_for_timeout(300)
        assert coloured_fraction(page.locator("#gl0").screenshot()) < before["#gl0"] + 0.005
        page.select_option("#overlay-select", label="segmentation")
        page.wait_for_timeout(300)
        assert "T1" in page.inner_text("#cap-0") and "T2FS" in page.inner_text("#cap-1")

        page.select_option("select[name='C5_left|nerve_t2']", "2")
        page.select_option("select[name='deltoid_right|muscle_atrophy']", "1")
        page.select_option("select[name='overall|impression']", "3")
        page.fill("#comment", "thick left C5")
        wait_until(page, "document.querySelector('#save-status').textContent.startsWith('saved')")
        page.screenshot(path=str(docs_img / "reader_viewer.png"))
        page.on("dialog", lambda d: d.accept())
        page.click("#submit-read")
        wait_until(page, "document.querySelector('#save-status').textContent.includes('locked')")
        assert page.locator("select[name='C5_left|nerve_t2']").is_disabled()

        admin = browser.new_page(viewport={"width": 1300, "height": 900})
        browser_login(admin, base, "admin")
        admin.wait_for_selector("#exams tbody tr")
        admin.screenshot(path=str(docs_img / "reader_admin.png"), full_page=True)
        admin.goto(f"{base}/admin/sessions/{sid}")
        admin.screenshot(path=str(docs_img / "reader_session.png"), full_page=True)
        with admin.expect_download() as download:
            admin.click("text=CSV")
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        browser.close()
    assert not csp_violations, csp_violations  # the reader's own pages and Niivue run under its CSP
    got = {(r["item"], r["scale"]): r["grade"] for r in rows}
    assert got == {("C5_left", "nerve_t2"): "2", ("deltoid_right", "muscle_atrophy"): "1",
                   ("overall", "impression"): "3"}
    assert {r["reader"] for r in rows} == {"reader1"} and all(r["submitted_at"] for r in rows)
