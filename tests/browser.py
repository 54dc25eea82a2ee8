"""Load an HTML file (a report) or a served page (`aelab explore`) in headless Chromium (Debian's chromium + chromium-driver, through
Selenium), and report what a reader would see: images that did not decode, console errors,
and a full-page screenshot.

    python tests/browser.py REPORT.html SHOT.png     # the same check by hand
"""

from __future__ import annotations

import base64
import shutil
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def missing() -> str | None:
    """Why the browser check cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for exe, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if not shutil.which(exe):
            return f"{exe} not found: install Debian's {package} (make setup does, where apt-get and root are there)"
    return None


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="aelab-chromium-")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options), profile


def _screenshot(driver, path: Path) -> None:
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    Path(path).write_bytes(base64.b64decode(shot["data"]))


def _settled(driver, before: int, timeout: float = 20) -> int:
    """Wait until the explorer has answered more decodes than `before` and no more come for 0.3 s."""
    count = lambda: int(driver.execute_script("return +(document.getElementById('latency').dataset.decodes || 0)"))  # noqa: E731
    deadline = time.time() + timeout
    while count() <= before and time.time() < deadline:
        time.sleep(0.05)
    last, still = count(), time.time()
    while time.time() - still < 0.3 and time.time() < deadline:
        time.sleep(0.05)
        if count() != last:
            last, still = count(), time.time()
    return last


def _click_dot(driver, plane, index: int) -> None:
    """Click test image `index`'s dot on the code plane (offsets from the canvas's centre)."""
    from selenium.webdriver.common.action_chains import ActionChains

    x, y, width, height, shown = driver.execute_script(
        f"const [x, y] = toCanvas(S.plane.x[{index}], S.plane.y[{index}]), c = document.getElementById('plane');"
        "return [x, y, c.width, c.height, c.getBoundingClientRect().width];")
    scale = shown / width  # the canvas is drawn at its width's scale in both directions
    ActionChains(driver).move_to_element_with_offset(plane, round((x - width / 2) * scale),
                                                     round((y - height / 2) * scale)).click().perform()


def drive_explorer(url: str, screenshot: Path, tour: bool = False) -> dict:
    """Open `aelab explore`'s page at `url`, drag across the code plane, click a slider, as a
    person would (real pointer events); returns the decoded image's pixels (a data URL) at
    each point, the decodes answered, the last latency shown, the number of per-label images
    and the console's errors; writes a screenshot of the whole page. With `tour`, it then
    picks two test images as the ends of an interpolation and moves along the path (for a
    screenshot of every part of the page)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver, profile = _chromium()
    try:
        driver.get(url)
        deadline = time.time() + 30
        while driver.execute_script("return document.body.dataset.ready") != "yes" and time.time() < deadline:
            time.sleep(0.05)
        pixels = lambda: driver.execute_script("return document.getElementById('decoded').toDataURL()")  # noqa: E731
        count = _settled(driver, 0)
        start = pixels()
        plane = driver.find_element(By.ID, "plane")
        drag = ActionChains(driver).move_to_element_with_offset(plane, -120, -100).click_and_hold()
        for _ in range(6):
            drag = drag.move_by_offset(30, 25).pause(0.05)
        drag.release().perform()
        count = _settled(driver, count)
        after_drag = pixels()
        slider = driver.find_element(By.CSS_SELECTOR, "#sliders input")
        ActionChains(driver).move_to_element_with_offset(slider, slider.size["width"] // 2 - 4, 0).click().perform()
        count = _settled(driver, count)
        after_slider = pixels()
        if tour:
            for index, end in ((3, "set-a"), (2, "set-b")):
                _click_dot(driver, plane, index)
                count = _settled(driver, count)
                driver.find_element(By.ID, end).click()
            path = driver.find_element(By.ID, "path")
            ActionChains(driver).move_to_element_with_offset(path, path.size["width"] // 10, 0).click().perform()
            count = _settled(driver, count)
        latency = driver.find_element(By.ID, "latency").text
        labels = len(driver.find_elements(By.CSS_SELECTOR, "#all-labels canvas"))
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        errors += [t for t in [driver.find_element(By.ID, "error").text] if t]
        _screenshot(driver, screenshot)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    ms = [int(w) for w in latency.split() if w.isdigit()]
    return {"start": start, "after_drag": after_drag, "after_slider": after_slider, "decodes": count,
            "latency_ms": ms[0] if ms else None, "labels_shown": labels, "errors": errors}


def check_page(html: Path, screenshot: Path) -> dict:
    """{'images': [(alt, complete, naturalWidth)], 'errors': [console messages of level SEVERE]};
    writes a screenshot of the whole page."""
    driver, profile = _chromium()
    try:
        driver.get(Path(html).resolve().as_uri())
        driver.execute_async_script(  # wait until every image has loaded or failed
            "const done = arguments[arguments.length - 1];"
            "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null))).then(() => done());")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);")
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        _screenshot(driver, screenshot)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return {"images": [tuple(i) for i in images], "errors": errors}


if __name__ == "__main__":
    why = missing()
    if why:
        sys.exit(why)
    result = check_page(Path(sys.argv[1]), Path(sys.argv[2]))
    bad = [i for i in result["images"] if not (i[1] and i[2] > 0)]
    print(f"{len(result['images'])} images, {len(bad)} not decoded, {len(result['errors'])} console errors")
    for line in bad + result["errors"]:
        print(" ", line)
    sys.exit(1 if bad or result["errors"] else 0)
