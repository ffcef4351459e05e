#!/usr/bin/env python3
"""Browser test of the demo app: headless Chromium driven by Selenium.

Starts `session-demo` on a free loopback port with the given storage, signs in as alice in two
browsers (separate profiles, so separate cookie jars), checks that both see two sessions,
revokes the second from the first, and checks that the second is signed out on reload; then
"sign out all others" and "sign out everywhere". Screenshots go to --screenshots.

usage: demo_browser_test.py --demo PATH [--storage URL] [--screenshots DIR] [--label NAME]
Exit code 0 when every check passed.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url, process, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"session-demo exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("session-demo did not answer in time")


def browser(profile_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1000,900", f"--user-data-dir={profile_dir}", "--no-first-run"):
        options.add_argument(argument)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    return driver


class Check:
    def __init__(self, label):
        self.label = label
        self.failures = 0

    def expect(self, condition, what):
        print(f"[{self.label}] {'ok  ' if condition else 'FAIL'} {what}", flush=True)
        if not condition:
            self.failures += 1


def text(driver, element_id):
    elements = driver.find_elements(By.ID, element_id)
    return elements[0].text if elements else None


def is_stale(element):
    """Whether `element` no longer belongs to the page. Besides StaleElementReferenceException,
    chromedriver reports an element whose page is being replaced as an "unknown error: ... Node
    with given id does not belong to the document" (a plain WebDriverException): that also
    means stale."""
    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error) or "No node with given id" in str(error):
            return True
        raise


def wait_for_new_page(driver, old_root):
    """Waits until the page that `old_root` belonged to is replaced and the new one loaded."""
    WebDriverWait(driver, 20).until(lambda d: is_stale(old_root))
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")


def click(driver, by, selector):
    """Clicks a submit button and waits for the page it leads to."""
    old_root = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, selector).click()
    wait_for_new_page(driver, old_root)


def reload(driver):
    old_root = driver.find_element(By.TAG_NAME, "html")
    driver.refresh()
    wait_for_new_page(driver, old_root)


def sign_in(driver, base, name):
    driver.get(base + "/")
    field = driver.find_element(By.ID, "name")
    field.clear()
    field.send_keys(name)
    click(driver, By.ID, "signin")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", required=True)
    parser.add_argument("--storage", default="memory://browser-test")
    parser.add_argument("--screenshots")
    parser.add_argument("--label", default="memory")
    arguments = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="session-demo-", suffix=".log", delete=False)
    demo = subprocess.Popen([arguments.demo, "--port", str(port), "--storage", arguments.storage,
                             "--secret", "browser test secret"], stdout=log, stderr=subprocess.STDOUT)
    check = Check(arguments.label)
    profiles = [tempfile.mkdtemp(prefix="chromium-a-"), tempfile.mkdtemp(prefix="chromium-b-")]
    first = second = None

    def shot(driver, name):
        if arguments.screenshots:
            os.makedirs(arguments.screenshots, exist_ok=True)
            driver.save_screenshot(os.path.join(arguments.screenshots, name))

    try:
        wait_until_up(base, demo)
        first = browser(profiles[0])
        second = browser(profiles[1])

        first.get(base + "/")
        check.expect(first.find_elements(By.ID, "signin") != [], "the sign-in page shows a sign-in form")
        shot(first, "demo-sign-in.png")

        sign_in(first, base, "alice")
        check.expect(text(first, "user") == "alice", "browser 1 is signed in as alice")
        check.expect(text(first, "count") == "1", "browser 1 sees one session")
        idling = first.find_element(By.CSS_SELECTOR, "#idling [data-seconds]").get_attribute("data-seconds")
        time.sleep(2.2)
        later = first.find_element(By.CSS_SELECTOR, "#idling [data-seconds]").get_attribute("data-seconds")
        check.expect(int(later) < int(idling), f"the idling timeout counts down ({idling} -> {later})")

        sign_in(second, base, "alice")
        check.expect(text(second, "user") == "alice", "browser 2 is signed in as alice")
        check.expect(text(second, "count") == "2", "browser 2 sees two sessions")

        reload(first)
        check.expect(text(first, "count") == "2", "browser 1 sees two sessions after a reload")
        rows = first.find_elements(By.CSS_SELECTOR, "#sessions tr.session")
        check.expect(len(rows) == 2, "two rows in the session list")
        check.expect(len(first.find_elements(By.CSS_SELECTOR, "#sessions tr.session.this")) == 1,
                     "one row is marked as this browser")
        shot(first, "demo-my-sessions.png")

        # Revoke the other browser's session from the first.
        click(first, By.CSS_SELECTOR, "#sessions tr.session:not(.this) button.revoke")
        check.expect(text(first, "message") == "Signed out one session.", "browser 1 revoked one session")
        check.expect(text(first, "count") == "1", "browser 1 now sees one session")

        reload(second)
        check.expect(second.find_elements(By.ID, "signin") != [] and text(second, "user") is None,
                     "browser 2 is signed out after a reload")
        check.expect(text(second, "message") == "You are signed out.", "browser 2 is told it is signed out")
        shot(second, "demo-revoked.png")

        # Sign out all others.
        sign_in(second, base, "alice")
        reload(first)
        check.expect(text(first, "count") == "2", "browser 1 sees the second browser again")
        click(first, By.ID, "revoke-others")
        check.expect(text(first, "message") == "Signed out 1 other session(s).", "sign out all others")
        reload(second)
        check.expect(text(second, "user") is None, "browser 2 is signed out by 'sign out all others'")

        # Sign out everywhere.
        sign_in(second, base, "alice")
        click(second, By.ID, "revoke-all")
        check.expect(second.find_elements(By.ID, "signin") != [], "browser 2 signed out everywhere is at the sign-in page")
        reload(first)
        check.expect(text(first, "user") is None, "browser 1 is signed out by 'sign out everywhere'")

        # Plain sign out.
        sign_in(first, base, "bob")
        check.expect(text(first, "user") == "bob", "browser 1 signs in as bob")
        click(first, By.ID, "signout")
        first.get(base + "/me")
        check.expect(text(first, "user") is None, "sign out ends the session")
    finally:
        for driver in (first, second):
            if driver is not None:
                driver.quit()
        demo.terminate()
        try:
            demo.wait(timeout=15)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        log.close()
        if check.failures:
            with open(log.name, encoding="utf-8", errors="replace") as f:
                print(f"--- session-demo log ({arguments.label}) ---\n" + f.read()[-4000:])
        os.unlink(log.name)

    print(f"[{check.label}] {'PASSED' if check.failures == 0 else f'FAILED ({check.failures})'}")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
