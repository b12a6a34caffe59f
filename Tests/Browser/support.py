"""Helpers for the console's browser tests: a real Ferry process, headless Chromium, a TCP
proxy that can be cut, and Incus checks. See test_console.py."""
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".build" / "browser-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class SetupError(AssertionError):
    """What the environment lacks; a failure, never a skip."""


def preflight():
    """Raises SetupError naming everything missing for the browser tests."""
    problems = []
    binary = os.environ.get("FERRY_BIN")
    if not binary:
        problems.append("FERRY_BIN is not set: run the tests with `make test` (or FERRY_BIN=.build/debug/ferry)")
    elif not os.access(binary, os.X_OK):
        problems.append(f"FERRY_BIN={binary} is not an executable file")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            problems.append(f"{path} is missing: install Debian's {package} (scripts/install-deps.sh does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("the Python package selenium is missing: scripts/install-deps.sh installs selenium==4.50.0")
    if not os.environ.get("INCUS_DIR"):
        problems.append("INCUS_DIR is not set: the tests need the private Incus daemon of `make test` (containers c1, c2)")
    if shutil.which("incus") is None:
        problems.append("the incus client is not on PATH")
    if problems:
        raise SetupError("browser tests cannot run:\n  - " + "\n  - ".join(problems))


def wait_until(description, predicate, timeout=30.0, interval=0.05):
    """Polls predicate until it returns a true value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as error:  # the condition cannot be evaluated yet
            last_error = error
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {description}{extra}")
        time.sleep(interval)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def random_file(directory, name, size):
    path = Path(directory) / name
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 1 << 20))
            handle.write(block)
            remaining -= len(block)
    return path


# ------------------------------------------------------------------------- Ferry


class Ferry:
    """A real ferry process on a free loopback port with its own spool."""

    def __init__(self, *flags):
        preflight()
        self.dir = Path(tempfile.mkdtemp(prefix="ferry-browser-"))
        self.spool = self.dir / "spool"
        self.lines = []
        self.cond = threading.Condition()
        self.process = subprocess.Popen(
            [os.environ["FERRY_BIN"], "--listen", "127.0.0.1:0", "--spool", str(self.spool), *flags],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self._read_log, daemon=True).start()
        line = self.wait_for_log("listening", timeout=30)
        match = re.search(r'address(?:=|":")([^\s"]+)', line)
        if not match:
            self.stop()
            raise SetupError(f"no address in Ferry's log line: {line}")
        self.address = match.group(1)
        self.host, port = self.address.rsplit(":", 1)
        self.port = int(port)
        self.base = f"http://{self.address}"

    def _read_log(self):
        for raw in self.process.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()

    def wait_for_log(self, fragment, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if fragment in line:
                        return line
                if self.process.poll() is not None:
                    raise SetupError(f"ferry exited ({self.process.returncode}); log:\n" + self.log_tail())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SetupError(f"no log line with {fragment!r} within {timeout}s; log:\n" + self.log_tail())
                self.cond.wait(min(remaining, 0.5))

    def log_tail(self, count=40):
        return "\n".join(self.lines[-count:])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # HTTP

    def request(self, method, path, body=None, headers=None, token=None, timeout=60):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = dict(headers or {})
            if token:
                headers["Authorization"] = f"Bearer {token}"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            connection.close()

    def json(self, method, path, token=None, expect=200, body=None, headers=None):
        status, _, data = self.request(method, path, body=body, headers=headers, token=token)
        if expect is not None and status != expect:
            raise AssertionError(f"{method} {path} answered {status}, not {expect}: {data[:400]!r}")
        return json.loads(data) if data else None

    def upload(self, container, path, body, token=None):
        """POST /upload; returns the task id."""
        status, _, data = self.request(
            "POST", "/upload", body=body, token=token,
            headers={"X-Container-Name": container, "X-File-Path": path, "Content-Type": "application/octet-stream"})
        if status != 202:
            raise AssertionError(f"POST /upload to {container}:{path} answered {status}: {data[:400]!r}")
        return json.loads(data)["id"]

    def task(self, task_id, token=None):
        return self.json("GET", f"/tasks/{task_id}", token=token)

    def state(self, task_id, token=None):
        return self.task(task_id, token)["state"]

    def metric(self, name, labels=None):
        """A sample of /metrics (0 when absent)."""
        _, _, data = self.request("GET", "/metrics")
        total = 0.0
        wanted = labels or {}
        for line in data.decode().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            if all(found.get(k) == v for k, v in wanted.items()):
                total += float(match.group(4))
        return total


# ------------------------------------------------------------------------- Incus


def incus(*args, check=True, timeout=120):
    result = subprocess.run(["incus", *args], capture_output=True, timeout=timeout, env=os.environ.copy())
    if check and result.returncode != 0:
        raise AssertionError(f"incus {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
    return result


def container_sha256(container, path):
    result = incus("exec", container, "--", "sha256sum", path, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.decode().split()[0]


# ------------------------------------------------------------------------- browser


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,940",
                     "--disable-gpu", "--no-first-run", "--no-default-browser-check"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def css_string(value):
    """value as a quoted CSS string, for attribute selectors."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ") + '"'


# ------------------------------------------------------------------------- proxy


class CuttableProxy:
    """A TCP proxy on loopback in front of HOST:PORT, written for the tests.

    It can limit the client-to-server rate (so an upload is slow enough to interrupt),
    counts the bytes it forwarded that way, records the request heads it saw (method, path,
    headers), and can be cut: every connection is closed and the port refuses connections
    until restore()."""

    def __init__(self, host, port, rate=None):
        self.target = (host, port)
        self.rate = rate
        self.lock = threading.Lock()
        self.connections = set()
        self.forwarded = 0
        self.requests = []
        self.cuts = 0
        self._allowance = 0.0
        self._stamp = time.monotonic()
        self._closed = False
        self.listener = self._listen(0)
        self.port = self.listener.getsockname()[1]
        self._start_accepting(self.listener)

    def _listen(self, port):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _start_accepting(self, listener):
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections.update((client, upstream))
            parser = _RequestHeads(self)
            threading.Thread(target=self._pump, args=(client, upstream, True, parser), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False, None), daemon=True).start()

    def _throttle(self, count):
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            self._allowance = min(self.rate * 0.25, self._allowance + (now - self._stamp) * self.rate)
            self._stamp = now
            self._allowance -= count
            debt = -self._allowance
        if debt > 0:
            time.sleep(debt / self.rate)  # rate limiting, not waiting for a condition

    def _pump(self, source, sink, upward, parser):
        try:
            while True:
                data = source.recv(64 * 1024)
                if not data:
                    break
                if upward:
                    self._throttle(len(data))
                    parser.feed(data)
                sink.sendall(data)
                if upward:
                    with self.lock:
                        self.forwarded += len(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
            with self.lock:
                self.connections.discard(source)
                self.connections.discard(sink)

    def cut(self):
        """Closes every connection and the listening socket: new connections are refused."""
        with self.lock:
            self.cuts += 1
            listener, self.listener = self.listener, None
            connections = list(self.connections)
        if listener:
            # shutdown wakes the thread blocked in accept(); close alone would not, and the
            # port would go on accepting.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()

    def restore(self):
        listener = self._listen(self.port)
        with self.lock:
            self.listener = listener
        self._start_accepting(listener)

    def close(self):
        self.cut()

    def record(self, head):
        with self.lock:
            self.requests.append(head)


class _RequestHeads:
    """Splits a client-to-server byte stream into requests (Content-Length bodies only)."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.buffer = b""
        self.body_left = 0

    def feed(self, data):
        while data:
            if self.body_left:
                taken = min(self.body_left, len(data))
                self.body_left -= taken
                data = data[taken:]
                continue
            self.buffer += data
            data = b""
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self.buffer = b""
                return
            head, rest = self.buffer[:end].decode("latin-1"), self.buffer[end + 4:]
            self.buffer = b""
            lines = head.split("\r\n")
            method, _, target = lines[0].partition(" ")
            headers = {}
            for line in lines[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
            self.proxy.record({"method": method, "path": target.rsplit(" ", 1)[0], "headers": headers,
                               "at": time.monotonic()})
            self.body_left = int(headers.get("content-length") or 0)
            data = rest
