"""End to end in a real headless chromium (Debian's chromium + chromium-driver, via selenium):
sign in, overview, a device and its chart, acknowledge as operator, refused as viewer, a live
reading appears, sign out. GA_WEB_SCREENSHOTS=DIR saves the README's screenshots there."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.web.kit import EUI1, EUI2, PASSWORDS, ConsoleServer, console

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def _binary(*names: str) -> str:
    for n in names:
        p = shutil.which(n) or (f"/usr/bin/{n}" if os.path.exists(f"/usr/bin/{n}") else None)
        if p:
            return p
    pytest.fail(f"{names[0]} is required: run scripts/test.sh (installs chromium, chromium-driver)")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    opts.add_argument("--window-size=1280,900")
    opts.binary_location = _binary("chromium", "chromium-browser")
    drv = webdriver.Chrome(service=Service(_binary("chromedriver")), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ConsoleServer]:
    with console(tmp_path / "console") as s:
        now = time.time()
        pts = [
            (
                now - i * 1200,
                {"co2_ppm": 600.0 + 400 * ((i // 18) % 2) + i % 7, "temperature_c": 21.0},
            )
            for i in reversed(range(700))  # oldest first: the last one is the device's last seen
        ]
        s.store_call(s.host.stage_readings, EUI1, pts)
        s.store_call(s.host.stage_readings, EUI2, [(now - 300, {"temperature_c": 52.5})])
        s.store_call(s.host.stage_alert, EUI1, "co2_high", now - 120)
        s.store_call(s.host.stage_alert, EUI2, "hot_low", now - 60)
        yield s


def wait(drv: webdriver.Chrome, cond: object, timeout: float = 10) -> object:
    return WebDriverWait(drv, timeout).until(cond)


def sign_in(drv: webdriver.Chrome, url: str, user: str) -> None:
    drv.get(url + "/")
    wait(drv, ec.presence_of_element_located((By.ID, "username")))
    drv.find_element(By.ID, "username").send_keys(user)
    pw = drv.find_element(By.ID, "password")
    pw.send_keys(PASSWORDS[user])
    pw.send_keys(Keys.ENTER)  # keyboard only
    wait(drv, ec.presence_of_element_located((By.ID, "checks")))


def shoot(drv: webdriver.Chrome, name: str) -> None:
    out = os.environ.get("GA_WEB_SCREENSHOTS")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    for label, (w, h) in (("desktop", (1280, 900)), ("phone", (360, 800))):
        drv.set_window_size(w, h)
        height = drv.execute_script("return document.documentElement.scrollHeight")
        drv.set_window_size(w, min(max(h, int(height) + 120), 2400))
        time.sleep(0.2)
        drv.save_screenshot(str(Path(out) / f"{name}-{label}.png"))
    drv.set_window_size(1280, 900)


def test_operator_and_viewer_in_a_real_browser(
    browser: webdriver.Chrome, srv: ConsoleServer
) -> None:
    drv, url = browser, srv.url
    sign_in(drv, url, "olga")
    checks = drv.find_element(By.ID, "checks").text
    assert "daemon" in checks and "devices" in checks and "database" in checks
    assert "OK" in checks or "WARN" in checks
    # the session cookie is HttpOnly: page script cannot read it
    assert "ga_session" not in drv.execute_script("return document.cookie")
    shoot(drv, "overview")

    # devices: search, open one, its chart
    # Each navigation is awaited by its URL first: an element found on the page being left
    # goes stale under the click (the unfiltered device list also shows "P7 classroom").
    drv.find_element(By.LINK_TEXT, "Devices").click()
    wait(drv, ec.url_contains("/devices"))
    q = wait(drv, ec.presence_of_element_located((By.ID, "q")))
    q.send_keys("P7", Keys.ENTER)
    wait(drv, ec.url_contains("q=P7"))
    wait(drv, ec.element_to_be_clickable((By.LINK_TEXT, "P7 classroom"))).click()
    wait(drv, ec.url_contains("/devices/"))
    wait(drv, ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart")))
    titles = [
        t.get_attribute("textContent")
        for t in drv.find_elements(By.CSS_SELECTOR, "svg.chart title")
    ]
    assert titles == ["co2_ppm", "temperature_c"]
    drv.find_element(By.LINK_TEXT, "7d").click()
    wait(drv, ec.url_contains("range=7d"))
    assert drv.find_elements(By.CSS_SELECTOR, "svg.chart polyline")
    assert "70b3d57ed0000001" in drv.page_source and "2b7e1516" not in drv.page_source
    shoot(drv, "device")

    # alerts: acknowledge one as operator
    drv.find_element(By.LINK_TEXT, "Alerts").click()
    wait(drv, ec.url_contains("/alerts"))
    buttons = wait(
        drv, ec.presence_of_all_elements_located((By.XPATH, "//button[text()='Acknowledge']"))
    )
    assert len(buttons) == 2
    shoot(drv, "alerts")
    buttons[0].click()
    wait(drv, ec.text_to_be_present_in_element((By.ID, "main"), "acknowledged"))
    assert len(drv.find_elements(By.XPATH, "//button[text()='Acknowledge']")) == 1
    acked = [a for a in srv.command("alerts", limit=10) if a["acked"]]
    assert len(acked) == 1

    # live readings: one stored now appears without a reload
    drv.find_element(By.LINK_TEXT, "Live").click()
    wait(drv, ec.url_contains("/live"))
    wait(drv, ec.text_to_be_present_in_element((By.ID, "live-state"), "connected"))
    srv.store_call(srv.host.stage_readings, EUI2, [(time.time(), {"temperature_c": 61.25})])
    wait(drv, ec.text_to_be_present_in_element((By.ID, "live"), "temperature_c 61.25"))
    assert EUI2 in drv.find_element(By.ID, "live").text

    # sign out: back to the sign-in form, pages refused
    drv.find_element(By.XPATH, "//button[text()='Sign out']").click()
    wait(drv, ec.presence_of_element_located((By.ID, "username")))
    drv.get(url + "/alerts")
    assert drv.find_elements(By.ID, "username") and "co2_high" not in drv.page_source

    # a viewer sees alerts but cannot acknowledge, even by posting the form itself
    sign_in(drv, url, "vic")
    drv.get(url + "/alerts")
    assert "hot_low" in drv.page_source
    assert not drv.find_elements(By.XPATH, "//button[text()='Acknowledge']")
    open_id = next(a["id"] for a in srv.command("alerts", limit=10) if not a["acked"])
    drv.execute_script(
        """const f = document.createElement('form'); f.method = 'post'; f.action = '/alerts/ack';
        for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value],
                              ['id', arguments[0]]]) {
          const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
        document.body.appendChild(f); f.submit();""",
        open_id,
    )
    wait(drv, ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "operators only"))
    assert all(not a["acked"] for a in srv.command("alerts", limit=10) if a["id"] == open_id)


def test_keyboard_reaches_every_nav_link(browser: webdriver.Chrome, srv: ConsoleServer) -> None:
    drv = browser
    sign_in(drv, srv.url, "vic")
    seen = []
    body = drv.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(15):
        el = drv.switch_to.active_element
        seen.append(el.text)
        el.send_keys(Keys.TAB)
    for label in ("Skip to content", "Overview", "Devices", "Alerts", "Live", "Doctor"):
        assert label in seen, seen
    drv.set_window_size(360, 800)  # phone width: no horizontal scrolling of the page itself
    drv.get(srv.url + "/devices")
    try:
        wait(drv, ec.presence_of_element_located((By.ID, "q")), 5)
    except TimeoutException:
        pytest.fail(drv.page_source[:500])
    over = drv.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert over <= 0
