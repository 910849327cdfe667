"""The cohort QA report of a 10-patient synthetic tree with one broken patient:
its files (every study listed, the broken one with its file, nothing loaded
from elsewhere, every image there, review CSV) and the pages opened in a real
browser (headless Chromium driven by selenium): statuses, sort, filter,
review persistence and download, no broken image; screenshots in the test's
output folder (and in ``DEFACERT_REPORT_SCREENSHOTS`` when set, for the docs).

In CI (``CI=true``) the browser test fails instead of skipping when Chromium,
chromedriver or selenium is missing.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import time
from pathlib import Path

import pydicom
import pytest

from DefaceRTLib import synthetic
from DefaceRTLib.deface import DefaceOptions
from DefaceRTLib.deface.pipeline import deface_path
from DefaceRTLib.deface.report import INDEX_NAME, REVIEW_NAME

N = 10
BROKEN = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_report")
    tree = root / "tree"
    for i in range(N):
        p = synthetic.make_patient(seed=200 + i, size=48, slice_thickness=8.0)
        synthetic.write_patient(p, tree / f"patient_{i:02d}")
    broken = tree / f"patient_{BROKEN:02d}" / "RTDOSE.dcm"
    ds = pydicom.dcmread(broken)
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"  # not the CT's: the study is refused, naming this file
    ds.save_as(broken)
    out = root / "out"
    # identity kept (the default de-identifies, and names ok studies by pseudonym)
    report = deface_path(tree, out, DefaceOptions(write_mask=False, qa_face="auto", deidentification=None))
    return report, root / "out-qa", broken


def _html(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_report_files(run):
    report, qa, broken = run
    assert report.count("ok") == N - 1 and report.count("input error") == 1
    index = _html(qa / INDEX_NAME)
    rows = re.findall(r'<tr class="st-[a-z]+" data-key="(\d+)" data-status="([^"]+)" data-source="([^"]+)"', index)
    assert len(rows) == N
    assert {s for _, s, _ in rows} == {"ok", "input error"}
    bad = [r for r in rows if r[1] != "ok"]
    assert len(bad) == 1 and bad[0][2].endswith(f"patient_{BROKEN:02d}")
    assert f'<code class="file">{broken}</code>' in index
    # self-contained: no network, no script or style from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', index) and "<link" not in index
    for page in [qa / INDEX_NAME] + sorted((qa / "studies").glob("*.html")):
        for ref in re.findall(r'(?:src|href)="([^"#]+)"', _html(page)):
            assert (page.parent / ref).resolve().is_file(), f"{page.name} links to missing {ref}"
    assert len(list((qa / "studies").glob("*.html"))) == N
    with open(qa / REVIEW_NAME, newline="", encoding="utf-8") as f:
        review = list(csv.DictReader(f))
    assert [r["study"] for r in review] == [k for k, _, _ in rows] and all(r["review"] == "" for r in review)
    # nothing of the report in the shareable output
    out = qa.parent / "out"
    assert not list(out.rglob("*.html")) and not list(out.rglob("*.png"))


def _chrome(download_dir: Path):
    ci = os.environ.get("CI", "").lower() == "true"
    missing = [n for n in ("chromium", "chromedriver") if shutil.which(n) is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        msg = f"headless browser test needs {', '.join(missing)} (scripts/system_deps.sh, requirements)"
        if ci:
            pytest.fail(msg)
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1000"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def _images_loaded(driver) -> list:
    """Sources of images that did not load (waits for every image to finish)."""
    deadline = time.time() + 20
    while time.time() < deadline and not driver.execute_script(
            "return Array.from(document.images).every(i => i.complete)"):
        time.sleep(0.1)
    return driver.execute_script("return Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)")


def _screenshot(driver, folders, name: str) -> None:
    """Whole-page screenshot (up to 2400 px high) into each of ``folders``."""
    h = min(int(driver.execute_script("return document.documentElement.scrollHeight")) + 120, 2400)
    driver.set_window_size(1600, max(h, 600))
    for d in folders:
        driver.save_screenshot(str(Path(d) / name))
    driver.set_window_size(1500, 1000)


def _visible_keys(driver) -> list:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#studies tbody tr')).filter(r => r.style.display !== 'none')"
        ".map(r => r.getAttribute('data-key'))")


def _column(driver, header_start: str) -> list:
    return driver.execute_script(
        "var hs = Array.from(document.querySelectorAll('#studies thead th'));"
        "var c = hs.findIndex(h => h.textContent.trim().startsWith(arguments[0]));"
        "return Array.from(document.querySelectorAll('#studies tbody tr')).map(r => r.cells[c].getAttribute('data-sort'));",
        header_start)


@pytest.mark.slow
def test_report_in_headless_chromium(run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report, qa, broken = run
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _chrome(downloads)
    shots = [tmp_path]
    if os.environ.get("DEFACERT_REPORT_SCREENSHOTS"):
        shots.append(Path(os.environ["DEFACERT_REPORT_SCREENSHOTS"]))
    try:
        driver.get((qa / INDEX_NAME).as_uri())
        assert _images_loaded(driver) == []
        n_img = driver.execute_script("return document.images.length")
        assert n_img >= 2 * (N - 1) + 2  # thumbnails before/after of every defaced study, and the plots
        rows = driver.find_elements(By.CSS_SELECTOR, "#studies tbody tr")
        assert len(rows) == N
        statuses = {r.get_attribute("data-source").rsplit("/", 1)[-1]: r.find_elements(By.CSS_SELECTOR, ".badge")[0].text
                    for r in rows}
        assert statuses == {f"patient_{i:02d}": ("input error" if i == BROKEN else "ok") for i in range(N)}
        bad = [r for r in rows if r.get_attribute("data-status") != "ok"][0]
        assert bad.find_element(By.CSS_SELECTOR, "code.file").text == str(broken)
        _screenshot(driver, shots, "qa-report-index.png")

        # sort by removed tissue, both ways; then back by number
        header = driver.find_element(By.XPATH, "//th[starts-with(normalize-space(.), 'removed tissue')]")
        header.click()
        vals = [float(v) if v else float("-inf") for v in _column(driver, "removed tissue")]
        assert vals == sorted(vals) and len(set(vals)) > 2
        header.click()
        vals = [float(v) if v else float("-inf") for v in _column(driver, "removed tissue")]
        assert vals == sorted(vals, reverse=True)
        driver.find_element(By.XPATH, "//th[normalize-space(.)='#']").click()
        assert _visible_keys(driver) == [f"{i + 1:03d}" for i in range(N)]

        # filter by text and by status
        box = driver.find_element(By.ID, "filter-text")
        box.send_keys("patient_05")
        assert _visible_keys(driver) == ["006"]
        box.clear()
        box.send_keys(" ")  # clear() fires no input event
        box.clear()
        status = Select(driver.find_element(By.ID, "filter-status"))
        status.select_by_value("failed")
        assert _visible_keys(driver) == [f"{BROKEN + 1:03d}"]
        status.select_by_value("ok")
        assert len(_visible_keys(driver)) == N - 1

        # review: tick, persist across a reload (localStorage), download as CSV
        status.select_by_value("")
        first = driver.find_elements(By.CSS_SELECTOR, "#studies tbody tr")[0]
        Select(first.find_element(By.CSS_SELECTOR, "select.review")).select_by_value("accepted")
        bad = [r for r in driver.find_elements(By.CSS_SELECTOR, "#studies tbody tr") if r.get_attribute("data-status") != "ok"][0]
        Select(bad.find_element(By.CSS_SELECTOR, "select.review")).select_by_value("needs attention")
        bad.find_element(By.CSS_SELECTOR, "input.note").send_keys("dose, FoR")
        status.select_by_value("needs attention")
        assert _visible_keys(driver) == [f"{BROKEN + 1:03d}"]
        driver.refresh()
        first = driver.find_elements(By.CSS_SELECTOR, "#studies tbody tr")[0]
        assert Select(first.find_element(By.CSS_SELECTOR, "select.review")).first_selected_option.text == "accepted"
        driver.find_element(By.ID, "download-review").click()
        target = downloads / REVIEW_NAME
        deadline = time.time() + 20
        while time.time() < deadline and not target.is_file():
            time.sleep(0.2)
        with open(target, newline="", encoding="utf-8") as f:
            ticks = {r["study"]: (r["review"], r["note"]) for r in csv.DictReader(f)}
        assert len(ticks) == N and ticks["001"] == ("accepted", "")
        assert ticks[f"{BROKEN + 1:03d}"] == ("needs attention", "dose, FoR")

        # a study page: QA figure, renders, checks; the broken one: its error and file
        driver.get((qa / "studies" / "001.html").as_uri())
        assert _images_loaded(driver) == []
        alts = driver.execute_script("return Array.from(document.images).map(i => i.alt)")
        assert "QA figure" in alts
        text = driver.find_element(By.TAG_NAME, "body").text
        for check in ("image_air", "image_unchanged", "dose_zeroed", "references"):
            assert check in text
        assert "Landmarks" in text and "eye plane z" in text
        _screenshot(driver, shots, "qa-report-study.png")
        driver.get((qa / "studies" / f"{BROKEN + 1:03d}.html").as_uri())
        assert str(broken) in driver.find_element(By.CSS_SELECTOR, "code.file").text
    finally:
        driver.quit()
    assert (tmp_path / "qa-report-index.png").stat().st_size > 10000


def test_landmark_warnings_shown(tmp_path):
    """Landmarks found in the image carry a confidence and warnings: both reach the report."""
    from types import SimpleNamespace

    from DefaceRTLib.deface.report import write_cohort_report

    summary = {"landmarks": {"source": "image", "confidence": 0.71, "warnings": ["eye contours 4 mm from the globes"],
                             "eyes": [], "middle_plane_z_mm": 0.0}, "cut": {}, "verification": {"passed": True, "checks": []}}
    (tmp_path / "s").mkdir()
    outcome = SimpleNamespace(source="/data/p1", output="s", status="ok", message="", summary=summary, where=None)
    index = write_cohort_report(tmp_path, [outcome]).read_text(encoding="utf-8")
    assert "image (confidence 0.71)" in index and "1 warning" in index and "eye contours 4 mm from the globes" in index
    page = (tmp_path / "studies" / "001.html").read_text(encoding="utf-8")
    assert "eye contours 4 mm from the globes" in page
