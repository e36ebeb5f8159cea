"""The interactive BP page in a real browser: headless Chromium driven over WebDriver.

The page is loaded from a ``file://`` URL, stepped to the end with clicks and key presses,
and the marginals it shows (``data-marginal`` on each ``data-node`` element) are compared with
``tree_bp`` on evidence rebuilt here from the library, to 1e-9; moving the slider must show the
marginals of the new noise level; stepping back must hide them again. A screenshot is saved in
the test's temporary folder.

Needs the ``selenium`` package (the ``test`` extra) and Chromium with its driver from the
distribution (``apt-get install -y chromium chromium-driver``); without them the test is
skipped, with the command. ``.ci/run`` installs both and sets ``HIERGRAMMAR_REQUIRE_BROWSER=1``,
which turns a missing browser into a failure, so CI cannot skip it silently.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from hiergrammar import RHM
from hiergrammar.bp import tree_bp
from hiergrammar.noise import UniformProcess, eps_evidence
from hiergrammar.teach import write_page

INSTALL = "apt-get install -y chromium chromium-driver"
GRID = [0.1, 0.3, 0.6]
SEED = 5


def _missing(reason: str) -> None:
    if os.environ.get("HIERGRAMMAR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HIERGRAMMAR_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed: pip install -e '.[test]' (or pip install selenium)")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if binary is None or driver_path is None:
        _missing(f"Chromium or chromedriver is not installed: {INSTALL}")
    options = Options()
    options.binary_location = binary
    profile = tmp_path_factory.mktemp("chromium-profile")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # needed as root (CI)
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1500,1300",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium then never looks for (or downloads) a driver.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _expected_marginals(eps: float) -> dict[str, np.ndarray]:
    """tree_bp on the page's datum, with the noisy leaves and evidence rebuilt here."""
    rhm = RHM(v=4, n_classes=2, m=2, s=2, L=2, seed=SEED)
    datum = rhm.sample(1, seed=SEED + 1)
    observed = UniformProcess(v=4).corrupt(datum.x, min(1.0, eps * 4 / 3), seed=SEED + 2)
    result = tree_bp(rhm, eps_evidence(observed, eps=eps, v=4))
    return {
        f"h{level}_{i}": result.marginals[level][0, i]
        for level in range(rhm.L + 1)
        for i in range(rhm.width(level))
    }


def _shown(driver) -> dict[str, list[float] | None]:
    from selenium.webdriver.common.by import By

    out = {}
    for element in driver.find_elements(By.CSS_SELECTOR, "[data-node]"):
        raw = element.get_attribute("data-marginal")
        out[element.get_attribute("data-node")] = None if raw is None else json.loads(raw)
    return out


def _step(driver) -> int:
    return int(driver.find_element("tag name", "body").get_attribute("data-step"))


def test_page_steps_to_the_end_and_shows_tree_bp_marginals(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = write_page(tmp_path / "teach.html", seed=SEED, eps=GRID, initial_eps=0.3)
    browser.get(page.resolve().as_uri())
    data = json.loads(browser.find_element(By.ID, "teach-data").get_attribute("textContent"))
    total = len(data["steps"])
    assert _step(browser) == 0
    shown = _shown(browser)
    assert sorted(shown) == sorted(n["name"] for n in data["nodes"])
    assert all(value is None for value in shown.values())  # nothing known before any message

    for _ in range(5):  # clicks ...
        browser.find_element(By.ID, "btn-next").click()
    assert _step(browser) == 5
    keys = ActionChains(browser)
    for _ in range(total):  # ... then the keyboard, past the end (it must stop there)
        keys.send_keys(Keys.ARROW_RIGHT)
    keys.perform()
    assert _step(browser) == total
    assert not browser.find_element(By.ID, "btn-next").is_enabled()
    assert browser.find_element(By.ID, "status").text == f"Step {total} of {total} (done)"

    expected = _expected_marginals(0.3)
    shown = _shown(browser)
    assert set(shown) == set(expected)
    for name, values in shown.items():
        assert values is not None, f"{name} shows no marginal after the last step"
        np.testing.assert_allclose(values, expected[name], rtol=0, atol=1e-9, err_msg=name)
    browser.save_screenshot(str(tmp_path / "teach_end.png"))
    assert (tmp_path / "teach_end.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the slider: one step right moves to the next noise level of the grid
    slider = browser.find_element(By.ID, "eps")
    slider.send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element("tag name", "body").get_attribute("data-eps-index") == "2"
    expected = _expected_marginals(0.6)
    for name, values in _shown(browser).items():
        np.testing.assert_allclose(values, expected[name], rtol=0, atol=1e-9, err_msg=name)
    assert any(
        np.abs(np.array(_shown(browser)[name]) - _expected_marginals(0.3)[name]).max() > 1e-3
        for name in expected
    ), "a different noise level must change some marginal"

    # previous hides the marginal the last message revealed; Home goes back to the start
    browser.find_element(By.ID, "btn-prev").click()
    assert _step(browser) == total - 1
    last = data["steps"][-1]["reveals"]
    assert _shown(browser)[last] is None
    ActionChains(browser).send_keys(Keys.HOME).perform()
    assert _step(browser) == 0
    assert all(value is None for value in _shown(browser).values())

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors  # no script error, no blocked request
