"""Load an HTML file in headless Chromium (Debian's chromium + chromium-driver, through
Selenium), and report what a reader would see: images that did not decode, console errors,
and a full-page screenshot.

    python tests/browser.py REPORT.html SHOT.png     # the same check by hand
"""

from __future__ import annotations

import base64
import shutil
import sys
import tempfile
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


def check_page(html: Path, screenshot: Path) -> dict:
    """{'images': [(alt, complete, naturalWidth)], 'errors': [console messages of level SEVERE]};
    writes a screenshot of the whole page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp(prefix="aelab-chromium-")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(Path(html).resolve().as_uri())
        driver.execute_async_script(  # wait until every image has loaded or failed
            "const done = arguments[arguments.length - 1];"
            "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null))).then(() => done());")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);")
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
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
