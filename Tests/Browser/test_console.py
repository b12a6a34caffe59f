#!/usr/bin/env python3
"""Browser tests of Ferry's web console (/ui/) in headless Chromium through selenium.

Run: FERRY_BIN=.build/debug/ferry INCUS_DIR=/tmp/ferry-test-incus python3 Tests/Browser/test_console.py
(`make test` provides both: a private Incus daemon with running containers c1 and c2).
Each test starts its own Ferry. Screenshots go to .build/browser-artifacts/."""
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import http.client
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import support  # noqa: E402
from support import (ARTIFACTS, CuttableProxy, Ferry, container_sha256, css_string, incus,  # noqa: E402
                     random_file, sha256_file, wait_until)

try:
    from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                            TimeoutException)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # preflight() reports it as a failure
    By = None

MIB = 1 << 20


def setUpModule():
    support.preflight()


class ConsoleTestCase(unittest.TestCase):
    """A browser per test, with its console log checked for JavaScript errors at the end."""

    ferry_flags = ()

    def setUp(self):
        self.ferry = Ferry(*self.ferry_flags)
        self.addCleanup(self.ferry.stop)
        self.files = Path(tempfile.mkdtemp(prefix="ferry-browser-files-"))
        self.addCleanup(shutil.rmtree, self.files, True)
        self.driver = support.chrome()
        self.addCleanup(self.driver.quit)
        self.logs = []
        self.base = self.ferry.base
        self.tag = secrets.token_hex(4)
        result = self._outcome.result
        self._problems_before = len(result.failures) + len(result.errors)

    def tearDown(self):
        # Runs before the cleanups (browser still open).
        result = self._outcome.result
        if len(result.failures) + len(result.errors) > self._problems_before:
            self.screenshot(f"{self.id().split('.')[-1]}-failure")
            sys.stderr.write(f"\n--- ferry log of {self.id()} ---\n{self.ferry.log_tail(30)}\n")
            sys.stderr.write(f"--- browser log ---\n{json.dumps(self.browser_log(), indent=1)[:4000]}\n")

    # Helpers ---------------------------------------------------------------

    def open(self, route="#/overview", base=None):
        self.driver.get(f"{base or self.base}/ui/{route}")
        self.wait_css("#view > *, #auth:not([hidden])")

    def go(self, route):
        self.driver.execute_script("location.hash = arguments[0]", route)

    def wait(self, description, condition, timeout=30):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition())
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout}s waiting for {description}") from None

    def wait_css(self, selector, timeout=30):
        return self.wait(selector, lambda: self.first(selector), timeout)

    def first(self, selector):
        found = self.driver.find_elements(By.CSS_SELECTOR, selector)
        return found[0] if found else None

    def wait_text(self, selector, text, timeout=30):
        """Waits until the element's text contains text."""
        def found():
            element = self.first(selector)
            return element is not None and text in element.text
        self.wait(f"{text!r} in {selector}", found, timeout)

    def click(self, selector, timeout=30):
        element = self.wait(f"a clickable {selector}", lambda: (lambda e: e if e and e.is_displayed() and e.is_enabled() else None)(self.first(selector)), timeout)
        element.click()
        return element

    def fill(self, selector, text):
        element = self.wait_css(selector)
        element.clear()
        element.send_keys(text)

    def screenshot(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))

    def browser_log(self):
        self.logs.extend(self.driver.get_log("browser"))
        return self.logs

    def assert_no_javascript_errors(self):
        """No SEVERE entry but failed loads (expected 401s, aborted streams on reload)."""
        errors = [entry for entry in self.browser_log()
                  if entry.get("level") == "SEVERE" and entry.get("source") != "network"]
        self.assertEqual(errors, [], "the page logged JavaScript errors")

    def assert_no_alert(self):
        try:
            text = self.driver.switch_to.alert.text
        except NoAlertPresentException:
            return
        self.fail(f"an alert opened: {text!r}")

    def upload_through_page(self, container, directory, paths, mode=None):
        self.go("#/upload")
        self.fill("input#container", container)
        self.fill("input#destination", directory)
        if mode:
            self.fill("input#mode", mode)
        self.wait_css("input#files").send_keys("\n".join(str(p) for p in paths))
        self.click("button#upload")

    def upload_row(self, name):
        return self.first(f"[data-file-name={css_string(name)}]")

    def wait_upload_done(self, name, timeout=120):
        def done():
            row = self.upload_row(name)
            if row is None:
                return None
            state = row.get_attribute("data-state")
            if state in ("error", "cancelled"):
                raise AssertionError(f"upload of {name} ended {state}: {row.text}")
            return row if state == "done" else None
        row = self.wait(f"the upload of {name} to be done", done, timeout)
        task_id = row.get_attribute("data-task-id")
        # NODE-HEX32: the node id (the host name by default), then 128 random bits.
        self.assertRegex(task_id or "", r"^[a-z0-9][a-z0-9-]{0,31}-[0-9a-f]{32}$")
        return task_id

    def wait_task_row(self, task_id, state, timeout=60):
        return self.wait_css(f"tr[data-task-id={css_string(task_id)}][data-state={css_string(state)}]", timeout)

    def wait_api_state(self, task_id, state, timeout=60, token=None):
        wait_until(f"task {task_id} to be {state} ({self.ferry.base})",
                   lambda: self.ferry.state(task_id, token) == state, timeout)


class UploadTests(ConsoleTestCase):
    def test_two_files_uploaded_through_the_page_are_delivered(self):
        status, headers, _ = self.ferry.request("GET", "/ui/")
        self.assertEqual(status, 200)
        self.assertIn("script-src 'self'", headers.get("content-security-policy", ""),
                      "the console runs under the strict CSP (violations would be logged as errors)")
        first = random_file(self.files, f"alpha-{self.tag}.bin", 300 * 1024 + 7)
        second = random_file(self.files, f"beta-{self.tag}.txt", 5 * MIB + 123)
        self.open("#/upload")
        self.upload_through_page("c1", "/tmp/", [first, second])
        ids = {}
        for path in (first, second):
            row = self.wait_css(f"[data-file-name={css_string(path.name)}]")
            self.assertIn(f"c1:/tmp/{path.name}", row.text, "the row names the full destination")
            ids[path.name] = self.wait_upload_done(path.name)
        self.screenshot("upload")
        for path in (first, second):
            wait_until(f"{path.name} in c1 with its SHA-256",
                       lambda: container_sha256("c1", f"/tmp/{path.name}") == sha256_file(path), 60, 0.3)
            row = self.upload_row(path.name)
            self.wait(f"the upload row of {path.name} to say delivered",
                      lambda: self.upload_row(path.name).get_attribute("data-task-state") == "delivered")
            self.assertIsNotNone(row.find_element(By.CSS_SELECTOR, f'a[href="#/tasks/{ids[path.name]}"]'))
        self.go("#/tasks")
        for task_id in ids.values():
            self.wait_task_row(task_id, "delivered")
        self.screenshot("tasks")
        # The detail view of one: every field, the digest.
        self.driver.find_element(By.CSS_SELECTOR, f'tr[data-task-id="{ids[first.name]}"] a').click()
        self.wait_css(f'#task-detail[data-task-id="{ids[first.name]}"]')
        self.assertEqual(self.first("#detail-sha256").text, sha256_file(first))
        self.assertEqual(self.first("#detail-path").text, f"/tmp/{first.name}")
        self.screenshot("task-detail")
        self.go("#/overview")
        self.wait_css('.card[data-state="delivered"]')
        self.wait("the overview to count two delivered",
                  lambda: self.first('.card[data-state="delivered"] .card-value').text == "2")
        self.screenshot("overview")
        self.assert_no_javascript_errors()

    def _large_upload(self, name):
        path = random_file(self.files, name, 64 * MIB)
        # 12 MiB/s: the upload takes about five seconds, long enough to interrupt it.
        proxy = CuttableProxy(self.ferry.host, self.ferry.port, rate=12 * MIB)
        self.addCleanup(proxy.close)
        proxy_base = f"http://127.0.0.1:{proxy.port}"
        received_before = self.ferry.metric("ferry_upload_bytes_received_total", {"protocol": "tus"})
        created_before = self.ferry.metric("ferry_tus_uploads_total", {"event": "created"})
        return path, proxy, proxy_base, received_before, created_before

    def _assert_resumed(self, path, task_id, received_before, created_before):
        received = self.ferry.metric("ferry_upload_bytes_received_total", {"protocol": "tus"}) - received_before
        self.assertGreaterEqual(received, path.stat().st_size)
        self.assertLess(received, 2 * path.stat().st_size, "the upload resumed, it did not start over")
        self.assertEqual(self.ferry.metric("ferry_tus_uploads_total", {"event": "created"}) - created_before, 1,
                         "one tus upload was created for the file")
        self.wait_api_state(task_id, "delivered", timeout=120)
        self.assertEqual(container_sha256("c1", f"/tmp/{path.name}"), sha256_file(path))

    def test_interrupted_large_upload_resumes(self):
        path, proxy, proxy_base, received_before, created_before = self._large_upload(f"large-{self.tag}.bin")
        self.open("#/upload", base=proxy_base)
        self.upload_through_page("c1", "/tmp", [path])
        wait_until("20 MiB of the upload to pass the proxy", lambda: proxy.forwarded >= 20 * MIB, 60)
        self.assertEqual(self.upload_row(path.name).get_attribute("data-state"), "uploading")
        proxy.cut()
        self.wait("the page to notice the broken link",
                  lambda: "retrying" in self.upload_row(path.name).text, 30)
        self.screenshot("upload-interrupted")
        # The port refuses connections until restored: the page's first retry (after 1 s)
        # is refused too, and it backs off to 2 s.
        self.wait("a retry to be refused", lambda: "retrying in 2 s" in self.upload_row(path.name).text, 30)
        proxy.restore()
        task_id = self.wait_upload_done(path.name, timeout=180)
        patches = [r for r in proxy.requests if r["method"] == "PATCH"]
        self.assertTrue(any(int(r["headers"].get("upload-offset", "0")) > 0 for r in patches))
        heads = [r for r in proxy.requests if r["method"] == "HEAD"]
        self.assertTrue(heads, "the page asked the server for the offset (HEAD) before going on")
        self._assert_resumed(path, task_id, received_before, created_before)
        self.assert_no_javascript_errors()

    def test_upload_continues_after_a_reload(self):
        path, proxy, proxy_base, received_before, created_before = self._large_upload(f"reload-{self.tag}.bin")
        self.open("#/upload", base=proxy_base)
        self.upload_through_page("c1", "/tmp/", [path])
        wait_until("20 MiB of the upload to pass the proxy", lambda: proxy.forwarded >= 20 * MIB, 60)
        self.browser_log()  # keep what the old page logged
        self.driver.refresh()
        mark = len(proxy.requests)
        self.wait_css("#view > *")
        self.assertIsNone(self.upload_row(path.name), "a new page has no rows")
        self.upload_through_page("c1", "/tmp/", [path])
        task_id = self.wait_upload_done(path.name, timeout=180)
        after = proxy.requests[mark:]
        self.assertFalse([r for r in after if r["method"] == "POST" and r["path"].startswith("/files")],
                         "no new upload was created after the reload")
        patches = [r for r in after if r["method"] == "PATCH"]
        self.assertTrue(patches, "the rest was sent by PATCH")
        self.assertGreater(int(patches[0]["headers"].get("upload-offset", "0")), 0,
                           "the first PATCH after the reload continues from the stored offset")
        self.assertEqual(self.driver.execute_script(
            "return Object.keys(localStorage).filter(k => k.startsWith('ferry.tus::')).length"), 0,
            "the stored upload URL is removed once the upload is done")
        self._assert_resumed(path, task_id, received_before, created_before)
        self.assert_no_javascript_errors()

    def test_cancel_terminates_the_upload(self):
        path = random_file(self.files, f"cancel-{self.tag}.bin", 32 * MIB)
        proxy = CuttableProxy(self.ferry.host, self.ferry.port, rate=4 * MIB)
        self.addCleanup(proxy.close)
        self.open("#/upload", base=f"http://127.0.0.1:{proxy.port}")
        self.upload_through_page("c1", "/tmp/", [path])
        wait_until("the upload to begin", lambda: proxy.forwarded >= 2 * MIB, 60)
        self.click(f"[data-file-name={css_string(path.name)}] button[data-action='cancel-upload']")
        self.wait("the row to be cancelled", lambda: self.upload_row(path.name).get_attribute("data-state") == "cancelled")
        deletes = wait_until("the page to send the tus DELETE",
                             lambda: [r for r in proxy.requests if r["method"] == "DELETE"], 10)
        task_id = deletes[0]["path"].rstrip("/").rsplit("/", 1)[-1]
        wait_until("the upload to be gone", lambda: self.ferry.request("GET", f"/tasks/{task_id}")[0] == 404, 10)
        self.assert_no_javascript_errors()


class DeadLetterTests(ConsoleTestCase):
    ferry_flags = ("--max-attempts", "1", "--retry-base", "10ms", "--retry-max", "50ms")

    def test_dead_letters_are_retried_and_deleted_from_the_page(self):
        late = f"late-{self.tag}"
        gone = f"gone-{self.tag}"
        self.addCleanup(lambda: incus("delete", "--force", late, check=False))
        bodies = {name: os.urandom(1000 + i) for i, name in enumerate(["one", "two"])}
        late_ids = {name: self.ferry.upload(late, f"/tmp/{name}-{self.tag}", body) for name, body in bodies.items()}
        gone_ids = [self.ferry.upload(gone, f"/tmp/g{i}", b"x") for i in range(3)]
        for task_id in list(late_ids.values()) + gone_ids:
            self.wait_api_state(task_id, "failed")

        self.open("#/dead")
        for task_id in late_ids.values():
            row = self.wait_css(f'tr[data-task-id="{task_id}"]')
            self.assertIn("not found", row.text.lower(), "the row shows Incus's reason")
        self.screenshot("dead-letters")

        # One dead letter deleted: the dialog, cancelled once, then confirmed.
        victim = gone_ids[0]
        self.click(f'tr[data-task-id="{victim}"] button[data-action="delete"]')
        self.click('dialog[open] button[data-action="cancel"]')
        self.wait("the dialog to close", lambda: self.first("dialog[open]") is None)
        self.assertEqual(self.ferry.request("GET", f"/tasks/{victim}")[0], 200, "cancel deletes nothing")
        self.click(f'tr[data-task-id="{victim}"] button[data-action="delete"]')
        self.screenshot("confirm-dialog")
        self.click('dialog[open] button[data-action="confirm"]')
        wait_until("the task to be deleted", lambda: self.ferry.request("GET", f"/tasks/{victim}")[0] == 404, 10)
        self.wait("its row to go", lambda: self.first(f'tr[data-task-id="{victim}"]') is None)

        # The other two of that container in bulk, filtered by container.
        self.go(f"#/dead?container={gone}")
        self.wait_css(f'tr[data-task-id="{gone_ids[1]}"]')
        self.click('button[data-action="delete-all"]')
        self.click('dialog[open] button[data-action="confirm"]')
        self.wait_text("#bulk-result", "Deleted 2 dead letters.")
        for task_id in gone_ids[1:]:
            self.assertEqual(self.ferry.request("GET", f"/tasks/{task_id}")[0], 404)

        # The instance comes into being: one retried by its row, the other by "Retry all".
        incus("launch", "ferry-busybox", late)
        self.go(f"#/dead?container={late}")
        self.click(f'tr[data-task-id="{late_ids["one"]}"] button[data-action="retry"]')
        self.wait_api_state(late_ids["one"], "delivered")
        self.wait("the retried row to leave", lambda: self.first(f'tr[data-task-id="{late_ids["one"]}"]') is None)
        self.click('button[data-action="retry-all"]')
        self.click('dialog[open] button[data-action="confirm"]')
        self.wait_text("#bulk-result", "Retried 1 dead letter.")
        self.wait_api_state(late_ids["two"], "delivered")
        for name, body in bodies.items():
            self.assertEqual(container_sha256(late, f"/tmp/{name}-{self.tag}"), hashlib.sha256(body).hexdigest())
        self.go("#/tasks")
        for task_id in late_ids.values():
            self.wait_task_row(task_id, "delivered")
        self.assert_no_javascript_errors()

    def test_markup_in_names_is_shown_as_text(self):
        directory = "/tmp/<script>alert(3)</script>"
        name = "<img src=x onerror=alert(2)>.txt"
        path = self.files / name
        path.write_bytes(b"hostile names\n")
        destination = f"{directory}/{name}"
        self.open("#/upload")
        self.upload_through_page("c1", directory, [path])
        row = self.wait_css(f"[data-file-name={css_string(name)}]")
        self.assertEqual(row.find_element(By.CSS_SELECTOR, ".upload-name").text, name)
        task_id = self.wait_upload_done(name)
        self.wait_api_state(task_id, "failed")  # the directory does not exist in c1
        self.go("#/tasks")
        tr = self.wait_task_row(task_id, "failed")
        self.assertEqual(tr.find_element(By.CSS_SELECTOR, "td.path").text, destination)
        self.screenshot("xss-tasks")
        self.go(f"#/tasks/{task_id}")
        self.wait_css(f'#task-detail[data-task-id="{task_id}"]')
        self.assertEqual(self.first("#detail-path").text, destination)
        self.screenshot("xss-detail")
        self.go("#/dead")
        self.assertEqual(self.wait_css(f'tr[data-task-id="{task_id}"] td.path').text, destination)
        self.assert_no_alert()
        self.assertEqual(self.driver.execute_script("return document.querySelectorAll('img').length"), 0)
        self.assertEqual(self.driver.execute_script("return document.scripts.length"), 1, "only console.js")
        self.assert_no_javascript_errors()


class TokenTests(ConsoleTestCase):
    def setUp(self):
        self.tokens = {name: secrets.token_urlsafe(24) for name in ("alice", "bob")}
        policy_dir = Path(tempfile.mkdtemp(prefix="ferry-browser-tokens-"))
        self.addCleanup(shutil.rmtree, policy_dir, True)
        policy = policy_dir / "tokens.yaml"
        lines = ["tokens:"]
        for name, token in self.tokens.items():
            lines += [f"  - name: {name}", f"    sha256: {hashlib.sha256(token.encode()).hexdigest()}",
                      '    containers: ["c1"]', '    paths: ["/tmp"]']
        policy.write_text("\n".join(lines) + "\n")
        self.ferry_flags = ("--tokens", str(policy))
        super().setUp()

    def test_token_prompt_and_own_tasks_only(self):
        mine = self.ferry.upload("c1", f"/tmp/alice-{self.tag}", b"a", token=self.tokens["alice"])
        theirs = self.ferry.upload("c1", f"/tmp/bob-{self.tag}", b"b", token=self.tokens["bob"])
        self.open("#/tasks")
        prompt = self.wait_css("#auth:not([hidden]) input#token")
        self.assertEqual(prompt.get_attribute("type"), "password")
        self.assertIsNone(self.first("tr[data-task-id]"), "nothing is shown without a token")
        self.screenshot("token-prompt")
        # A wrong token is refused and the prompt stays.
        prompt.send_keys("not-a-token")
        self.click("#sign-in")
        self.wait("the refusal", lambda: "not accepted" in self.first("#auth-error").text)
        self.fill("input#token", self.tokens["alice"])
        self.click("#sign-in")
        self.wait_css(f'tr[data-task-id="{mine}"]')
        shown = {e.get_attribute("data-task-id") for e in self.driver.find_elements(By.CSS_SELECTOR, "tr[data-task-id]")}
        self.assertEqual(shown, {mine}, f"alice sees only her task, not bob's {theirs}")
        self.assertEqual(self.driver.execute_script("return sessionStorage.getItem('ferry.token')"), self.tokens["alice"])
        self.assertEqual(self.driver.get_cookies(), [], "no cookies")
        self.screenshot("tasks-as-alice")
        # Uploads through the page carry the token; one the rule refuses shows why.
        allowed = random_file(self.files, f"alice-page-{self.tag}.bin", 70000)
        self.upload_through_page("c1", "/tmp/", [allowed])
        page_task = self.wait_upload_done(allowed.name)
        self.wait_api_state(page_task, "delivered", token=self.tokens["alice"])
        self.assertEqual(container_sha256("c1", f"/tmp/{allowed.name}"), sha256_file(allowed))
        refused = random_file(self.files, f"alice-refused-{self.tag}.bin", 10)
        self.upload_through_page("c2", "/tmp/", [refused])
        self.wait(f"the refused upload's row", lambda: (self.upload_row(refused.name) or None)
                  and self.upload_row(refused.name).get_attribute("data-state") == "error")
        self.assertIn("403 forbidden", self.upload_row(refused.name).find_element(By.CSS_SELECTOR, ".upload-error").text)
        self.screenshot("upload-refused")
        # Sign out: the token is forgotten and the prompt is back.
        self.click("#sign-out")
        self.wait_css("#auth:not([hidden]) input#token")
        self.assertIsNone(self.driver.execute_script("return sessionStorage.getItem('ferry.token')"))
        self.assert_no_javascript_errors()


class PauseAndEventTests(ConsoleTestCase):
    def test_pausing_a_container_from_the_page_holds_its_uploads(self):
        self.open("#/overview")
        self.fill("input#pause-container", "c2")
        self.click('button[data-action="pause"]')
        self.wait_css('button[data-action="resume"][data-container="c2"]')
        paused = self.ferry.json("GET", "/deliveries")
        self.assertIn("c2", [entry["container"] for entry in paused["containers"]])
        body = os.urandom(4096)
        task_id = self.ferry.upload("c2", f"/tmp/paused-{self.tag}", body)
        # Paused: it stays queued (watched for three seconds).
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.assertEqual(self.ferry.state(task_id), "queued", "a paused container's upload waits")
            time.sleep(0.2)
        self.screenshot("overview-paused")
        # A second tab watches the task on the tasks page while the first resumes: its row
        # changes in place (the same element: a re-rendered table would leave it stale and
        # this wait would time out), from the events.
        overview = self.driver.current_window_handle
        self.driver.switch_to.new_window("tab")
        self.open("#/tasks")
        row = self.wait_task_row(task_id, "queued")
        tasks = self.driver.current_window_handle
        self.driver.switch_to.window(overview)
        self.click('button[data-action="resume"][data-container="c2"]')
        self.wait_api_state(task_id, "delivered")
        self.driver.switch_to.window(tasks)
        self.wait("the tasks page's row to turn delivered in place",
                  lambda: row.get_attribute("data-state") == "delivered")
        self.assertEqual(row.find_element(By.CSS_SELECTOR, ".badge").text, "delivered")
        self.assertEqual(row.find_elements(By.CSS_SELECTOR, "td")[5].text, "1", "attempts, live")
        self.driver.switch_to.window(overview)
        self.wait("the paused list to empty", lambda: self.first('button[data-action="resume"][data-container="c2"]') is None)
        self.assertEqual(container_sha256("c2", f"/tmp/paused-{self.tag}"), hashlib.sha256(body).hexdigest())
        self.assert_no_javascript_errors()

    def test_events_deliver_an_uploads_states_in_order(self):
        events = []
        connected = threading.Event()
        lock = threading.Lock()
        connection = http.client.HTTPConnection(self.ferry.host, self.ferry.port, timeout=60)
        self.addCleanup(connection.close)

        def read():
            connection.request("GET", "/events", headers={"Accept": "text/event-stream"})
            response = connection.getresponse()
            if response.status != 200:
                with lock:
                    events.append({"status": response.status})
                connected.set()
                return
            connected.set()
            kind, data = None, []
            try:
                for raw in response:
                    line = raw.decode().rstrip("\r\n")
                    if not line:
                        if data and kind == "task":
                            with lock:
                                events.append(json.loads("\n".join(data)))
                        kind, data = None, []
                    elif line.startswith(":"):
                        continue
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
            except Exception:  # the connection is closed at the end of the test
                pass

        threading.Thread(target=read, daemon=True).start()
        self.assertTrue(connected.wait(15), "/events answered")
        self.assertNotIn("status", events[0] if events else {}, f"/events answered {events}")
        task_id = self.ferry.upload("c1", f"/tmp/events-{self.tag}", b"event order")

        def states():
            with lock:
                return [e["state"] for e in events if e.get("id") == task_id]
        wait_until("the delivered event", lambda: "delivered" in states(), 60)
        self.assertEqual(states(), ["queued", "pushing", "delivered"])
        with lock:
            last = [e for e in events if e.get("id") == task_id][-1]
        self.assertEqual((last["container"], last["path"], last["bytes"]), ("c1", f"/tmp/events-{self.tag}", 11))


def main():
    try:
        support.preflight()
    except support.SetupError as error:
        print(f"FAIL: {error}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    if len(sys.argv) > 1:
        suite = unittest.TestSuite(t for t in _flatten(suite) if any(a in t.id() for a in sys.argv[1:]))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


if __name__ == "__main__":
    sys.exit(main())
