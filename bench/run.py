#!/usr/bin/env python3
"""`make bench`: Ferry's figures and their references, measured in the same run.

Builds release, starts Ferry on scratch spools, and prints one table (appended to
BENCHMARKS.md with date, commit and machine). Every figure is the median of RUNS runs.

Sections (FERRY_BENCH_ONLY=name,name runs only those):
  ingest: wrk, 4 KiB POSTs (each to its own path), 50 connections, 10 s, only 202s
     counted, with and without --fsync. Pushes are held (bench/stalled-incus), so the
     figure is receiving and committing. Each Ferry run follows a run of its references:
     a plain C loop creating, writing and closing 4 KiB files on the spool's file system
     (with an fsync per file for --fsync), and, for --no-fsync, a raw C evhttp server
     writing a file per body (bench/reference_server.c). Ratios are medians of per-pair
     ratios.
  lane: pushes held, every upload to the same path, RUNS consecutive wrk runs of 8 s
     against one Ferry; each run's accepted/s and the slowest over the fastest.
  history: 150,000 uploads to distinct paths delivered by a no-op pusher (/bin/true)
     with retention on, in thirds: accepted+delivered/s of each third, then RSS, the
     spool's files and whether the oldest task is still served.
  healthz: the same wrk load on GET /healthz (the HTTP path without the disk).
  large: one 1 GiB body with curl -T, in turn to the Go seed (bench/go/seed: the
     article's handler completed, net/http and io.Copy to a temp file, no sync), Ferry
     --no-fsync, Ferry --fsync, and dd conv=fdatasync; MiB/s until the answer, Ferry's
     peak RSS.
  concurrent: 50 uploads of 200 MiB at once to Ferry --fsync: peak RSS.
  tus: the same 1 GiB in one tus PATCH and in one POST /upload (curl -T both), in turn to
     one Ferry --no-fsync each; with FERRY_BENCH_BASELINE=PATH (an older ferry, e.g. one
     that did not hash), that binary's /upload of the same file in each turn too. Then the
     cost of resuming with --fsync: HEAD, and HEAD plus a 64 KiB PATCH, each on a new
     connection, 50 times.
  burst: 1,000 x 4 KiB from 8 keep-alive clients (bench/go/burst) into one directory of
     a container of a private, real Incus, until the last file is delivered: Ferry, Ferry
     --follow-symlinks, the Go seed (one `incus file push` per file, 4 workers), and the
     Incus CLI's own limit (the same files in 2 parallel calls, no HTTP); plus one file
     per call, one call at a time.
  soak: 30 s of 100 MiB uploads and bursts of 4 KiB ones into a real container: RSS and
     descriptors each second, then every accepted upload delivered.
  recovery: start-up time with 100,000 unfinished tasks in the spool.
"""
import datetime
import http.client
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.path.join(ROOT, ".build", "release", "ferry")
REFERENCE = os.path.join(ROOT, ".build", "bench-reference-files")
REFERENCE_SERVER = os.path.join(ROOT, ".build", "bench-reference-server")
GO_SEED = os.path.join(ROOT, ".build", "bench-go-seed")
BURST = os.path.join(ROOT, ".build", "bench-burst")
RUNS = int(os.environ.get("FERRY_BENCH_RUNS", "3"))
SECONDS = os.environ.get("FERRY_BENCH_SECONDS", "10")
RECOVERY_TASKS = int(os.environ.get("FERRY_BENCH_RECOVERY_TASKS", "100000"))
HISTORY = int(os.environ.get("FERRY_BENCH_HISTORY", "150000"))
LARGE_MIB = int(os.environ.get("FERRY_BENCH_LARGE_MIB", "1024"))
CONCURRENT = int(os.environ.get("FERRY_BENCH_CONCURRENT", "50"))
CONCURRENT_MIB = int(os.environ.get("FERRY_BENCH_CONCURRENT_MIB", "200"))
BURST_FILES = int(os.environ.get("FERRY_BENCH_BURST_FILES", "1000"))
SOAK_SECONDS = float(os.environ.get("FERRY_BENCH_SOAK_SECONDS", "30"))
# FERRY_BENCH_ONLY=large,burst runs only those sections (names as in SECTIONS below).
ONLY = [name for name in os.environ.get("FERRY_BENCH_ONLY", "").split(",") if name]
# An older ferry binary to compare /upload with in the tus section (hashing's cost).
BASELINE = os.environ.get("FERRY_BENCH_BASELINE")
SINGLE_PUSHES = int(os.environ.get("FERRY_BENCH_SINGLE_PUSHES", "40"))
INCUS_ENV = os.path.join(ROOT, "scripts", "incus-env.sh")
SETTLE = float(os.environ.get("FERRY_BENCH_SETTLE", "11"))
STALLED = os.path.join(ROOT, "bench", "stalled-incus")
# Runs with a stand-in pusher have no Incus daemon to check destinations against: the
# symlink check would hold every push waiting for one, so it is skipped (its cost has its
# own figure, in the burst into a real daemon).
NO_DAEMON = ("--follow-symlinks",)


def run(command, **options):
    done = subprocess.run(command, text=True, capture_output=True, **options)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def report(name, value):
    """Prints a figure as soon as it is measured (the table comes at the end)."""
    print(f"bench: {name}: {value}", file=sys.stderr, flush=True)


class Ferry:
    """A ferry process in its own session (so its pushes can be killed with it)."""

    def __init__(self, spool, *arguments, environment=None, binary=FERRY):
        self.process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--spool", spool, "--log-level", "notice", *arguments],
            stderr=subprocess.PIPE, text=True, start_new_session=True, env=environment)
        self.lines = []
        while True:
            line = self.process.stderr.readline()
            if not line:
                raise RuntimeError("ferry did not start:\n" + "".join(self.lines))
            self.lines.append(line)
            match = re.search(r"address=(\S+)", line)
            if "listening" in line and match:
                self.address = match.group(1)
                break
        # Read on: a full pipe would stop Ferry at its next log line.
        threading.Thread(target=lambda: self.process.stderr.read(), daemon=True).start()

    def peak_rss(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def get(self, target):
        host, port = self.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port))
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode()

    def delivered(self):
        _, text = self.get("/metrics")
        match = re.search(r'^ferry_push_attempts_total\{outcome="delivered"\} (\S+)$', text, re.M)
        return float(match.group(1)) if match else 0

    def kill(self, signal_number=signal.SIGTERM):
        os.killpg(self.process.pid, signal_number)
        self.process.wait()


def settle():
    """ext4 without a journal (as on these machines) looks past inodes deleted in the last
    ~10 s whenever it allocates one, so file creation crawls for a while after a run's
    files are removed. Every measurement starts after that has passed."""
    subprocess.run(["sync"])
    time.sleep(SETTLE)


def wrk_uploads(address, seconds=SECONDS):
    """One wrk run of bench/upload.lua: (accepted/s, p50 ms, p99 ms, refused)."""
    output = run(["wrk", "-t2", "-c50", f"-d{seconds}s", "-s", os.path.join(ROOT, "bench", "upload.lua"),
                  f"http://{address}"])
    line = next(l for l in output.splitlines() if l.startswith("FERRY "))
    fields = dict(pair.split("=") for pair in line.split()[1:])
    return (int(fields["accepted"]) / float(fields["seconds"]), float(fields["p50_ms"]), float(fields["p99_ms"]),
            int(fields["refused"]) + int(fields["errors"]))


def ingest(scratch, fsync):
    """Ferry's small ingest, each run right after a run of its reference loop and (without
    --fsync) of the raw C evhttp server."""
    results = []
    for number in range(RUNS):
        settle()
        loop, loop_p99, loop_max = reference_once(scratch, sync=fsync)
        result = {"loop": loop, "loop_p99": loop_p99, "loop_max": loop_max}
        if not fsync:
            settle()
            folder = os.path.join(scratch, f"c-server-{number}")
            os.makedirs(folder)
            server = Server([REFERENCE_SERVER, folder])
            result["c"], _, result["c_p99"], _ = wrk_uploads(server.address)
            server.kill()
            subprocess.run(["rm", "-rf", folder])
        settle()
        spool = os.path.join(scratch, f"ingest-{'fsync' if fsync else 'nofsync'}-{number}")
        ferry = Ferry(spool, "--incus", STALLED, "--workers", "1", "--queue-capacity", "100000000",
                      "--fsync" if fsync else "--no-fsync", *NO_DAEMON)
        result["rate"], result["p50"], result["p99"], result["refused"] = wrk_uploads(ferry.address)
        ferry.kill()
        result["ratio"] = result["rate"] / loop
        if not fsync:
            result["c_ratio"] = result["rate"] / result["c"]
            result["c_p99_ratio"] = result["p99"] / result["c_p99"]
        results.append(result)
        subprocess.run(["rm", "-rf", spool])
    figures = {key: statistics.median(r[key] for r in results) for key in results[0]}
    report(f"ingest {'fsync' if fsync else 'no-fsync'} runs", results)
    return figures


def one_destination(scratch):
    """Accepted/s of consecutive runs, every upload to one path, pushes held."""
    settle()
    spool = os.path.join(scratch, "one-destination")
    ferry = Ferry(spool, "--incus", STALLED, "--queue-capacity", "100000000", "--no-fsync", *NO_DAEMON)
    rates = []
    for _ in range(RUNS):
        output = run(["wrk", "-t2", "-c50", "-d8s", "-s", os.path.join(ROOT, "bench", "upload.lua"),
                      f"http://{ferry.address}"], env=dict(os.environ, FERRY_BENCH_ONE_PATH="/tmp/ferry-bench/one.bin"))
        line = next(l for l in output.splitlines() if l.startswith("FERRY "))
        fields = dict(pair.split("=") for pair in line.split()[1:])
        rates.append(int(fields["accepted"]) / float(fields["seconds"]))
    ferry.kill()
    subprocess.run(["rm", "-rf", spool])
    report("one destination, consecutive runs, accepted/s", rates)
    return rates


def counter(text, name, labels):
    """The value of one Prometheus sample in /metrics text (0 when absent)."""
    pattern = re.escape(name) + r"\{" + ",".join(re.escape(f'{k}="{v}"') for k, v in labels) + r"\} (\S+)$"
    match = re.search("^" + pattern, text, re.M)
    return float(match.group(1)) if match else 0


def history(scratch):
    """HISTORY uploads to distinct paths in thirds, delivered by a no-op pusher, retention on:
    each third's accepted+delivered rate (from its first request until its last upload is
    delivered), then RSS, the spool's files, and whether the oldest task is still served."""
    settle()
    spool = os.path.join(scratch, "history")
    ferry = Ferry(spool, "--incus", "/bin/true", "--no-fsync", "--queue-capacity", "100000000",
                  "--retention", "24h", *NO_DAEMON)
    host, port = ferry.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port))
    connection.request("POST", "/upload", body=b"first", headers={
        "X-Container-Name": "bench", "X-File-Path": "/tmp/ferry-bench/oldest.bin"})
    first = connection.getresponse()
    oldest = re.search(r'"id":"([0-9a-f]+)"', first.read().decode()).group(1)

    def totals():
        _, text = ferry.get("/metrics")
        accepted = counter(text, "ferry_http_requests_total", [("route", "/upload"), ("status", "202")])
        return accepted, counter(text, "ferry_push_attempts_total", [("outcome", "delivered")])

    rates = []
    for third in range(3):
        before, _ = totals()
        started = time.monotonic()
        run(["wrk", "-t2", "-c50", "-d600s", "-s", os.path.join(ROOT, "bench", "upload.lua"),
             f"http://{ferry.address}"],
            env=dict(os.environ, FERRY_BENCH_LIMIT=str(HISTORY // 6), FERRY_BENCH_PREFIX=f"/tmp/ferry-bench/{third}"))
        while True:
            accepted, delivered = totals()
            if delivered >= accepted:
                break
            time.sleep(0.05)
        rates.append((accepted - before) / (time.monotonic() - started))
    accepted, _ = totals()
    with open(f"/proc/{ferry.process.pid}/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    files = len(os.listdir(spool))
    status, text = ferry.get(f"/tasks/{oldest}")
    served = status == 200 and '"state":"delivered"' in text
    ferry.kill()
    subprocess.run(["rm", "-rf", spool])
    figures = {"rates": rates, "accepted": accepted, "rss": rss, "files": files, "oldest_served": served}
    report("history", figures)
    return figures


def healthz(scratch):
    """The same wrk load on a route that touches no disk: the latency of the HTTP path and
    of a machine shared by client and server, for comparison with the upload's."""
    results = []
    for number in range(RUNS):
        ferry = Ferry(os.path.join(scratch, f"healthz-{number}"), "--incus", "/bin/true")
        output = run(["wrk", "-t2", "-c50", f"-d{SECONDS}s", "--latency", f"http://{ferry.address}/healthz"])
        ferry.kill()
        percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.M))
        rate = float(re.search(r"Requests/sec:\s+(\S+)", output).group(1))
        results.append({"rate": rate, "p50": milliseconds(percentiles["50"]), "p99": milliseconds(percentiles["99"])})
    report("healthz runs", results)
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def milliseconds(text):
    """wrk's latency text (850.00us, 4.24ms, 1.02s) in milliseconds."""
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    raise ValueError(text)


class Server:
    """A reference server (the Go seed, the C evhttp loop) that prints its address."""

    def __init__(self, command, environment=None):
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment,
                                        start_new_session=True)
        while True:
            line = self.process.stderr.readline()
            if not line:
                raise RuntimeError(f"{command[0]} did not start")
            match = re.search(r"address=(\S+)", line)
            if match:
                self.address = match.group(1)
                break
        threading.Thread(target=lambda: self.process.stderr.read(), daemon=True).start()

    def delivered(self):
        host, port = self.address.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port))
        connection.request("GET", "/delivered")
        delivered, failed = connection.getresponse().read().decode().split()
        if int(failed):
            raise RuntimeError(f"the Go seed failed {failed} pushes")
        return int(delivered)

    def kill(self):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait()


def curl_upload(address, source, path, *extra):
    """The curl command that streams `source` (-T) to /upload and prints the status."""
    return ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-T", source,
            "-H", "X-Container-Name: bench", "-H", f"X-File-Path: {path}", "-H", "Expect:", *extra,
            f"http://{address}/upload"]


def post_file(address, source, path, *extra):
    """curl -T of one file to /upload; returns (seconds, HTTP status)."""
    started = time.monotonic()
    output = run(curl_upload(address, source, path, *extra))
    return time.monotonic() - started, output.strip()


def large_upload(scratch):
    """One LARGE_MIB body through curl (-T, streamed from a file), in turn to the Go seed,
    Ferry --no-fsync, Ferry with --fsync (the default) and dd conv=fdatasync: MiB/s until
    the answer, Ferry's peak RSS, and the per-turn ratios to the Go seed."""
    source = os.path.join(scratch, "large-source")
    run(["dd", "if=/dev/urandom", f"of={source}", "bs=1M", f"count={LARGE_MIB}", "status=none"])
    turns = []
    for number in range(RUNS):
        turn = {}
        settle()
        seed = Server([GO_SEED, "-dir", os.path.join(scratch, f"go-{number}"), "-incus", "/bin/true"])
        seconds, status = post_file(seed.address, source, "/tmp/large")
        seed.kill()
        if status != "202":
            raise RuntimeError(f"the Go seed answered {status}")
        turn["go"] = LARGE_MIB / seconds
        subprocess.run(["rm", "-rf", os.path.join(scratch, f"go-{number}")])
        for mode in ("--no-fsync", "--fsync"):
            settle()
            spool = os.path.join(scratch, f"large-{number}")
            ferry = Ferry(spool, "--incus", "/bin/true", "--max-body-size", f"{LARGE_MIB + 1}M", mode, *NO_DAEMON)
            seconds, status = post_file(ferry.address, source, "/tmp/large")
            if status != "202":
                raise RuntimeError(f"large upload answered {status}")
            turn[mode] = LARGE_MIB / seconds
            turn[f"{mode} rss"] = ferry.peak_rss()
            ferry.kill()
            subprocess.run(["rm", "-rf", spool])
        settle()
        target = os.path.join(scratch, "dd-target")
        started = time.monotonic()
        run(["dd", f"if={source}", f"of={target}", "bs=1M", "conv=fdatasync", "status=none"])
        turn["dd"] = LARGE_MIB / (time.monotonic() - started)
        os.remove(target)
        turn["fast ratio"] = turn["--no-fsync"] / turn["go"]
        turn["durable ratio"] = turn["--fsync"] / turn["go"]
        turns.append(turn)
    os.remove(source)
    report("large upload turns (MiB/s, RSS bytes)", turns)
    figures = {key: statistics.median(t[key] for t in turns) for key in turns[0]}
    figures["peak rss"] = max(max(t["--no-fsync rss"], t["--fsync rss"]) for t in turns)
    return figures


def concurrent_large(scratch):
    """CONCURRENT uploads of CONCURRENT_MIB each at once (curl -T), Ferry with --fsync:
    its peak RSS, and the MiB/s of all of them together."""
    source = os.path.join(scratch, "concurrent-source")
    run(["dd", "if=/dev/urandom", f"of={source}", "bs=1M", f"count={CONCURRENT_MIB}", "status=none"])
    peaks, rates = [], []
    for number in range(RUNS):
        settle()
        spool = os.path.join(scratch, f"concurrent-{number}")
        ferry = Ferry(spool, "--incus", "/bin/true", "--max-body-size", f"{CONCURRENT_MIB + 1}M", *NO_DAEMON)
        started = time.monotonic()
        curls = [subprocess.Popen(curl_upload(ferry.address, source, f"/tmp/concurrent-{index}"),
                                  stdout=subprocess.PIPE, text=True) for index in range(CONCURRENT)]
        statuses = [curl.communicate()[0].strip() for curl in curls]
        rates.append(CONCURRENT * CONCURRENT_MIB / (time.monotonic() - started))
        if statuses != ["202"] * CONCURRENT:
            raise RuntimeError(f"concurrent uploads answered {sorted(set(statuses))}")
        peaks.append(ferry.peak_rss())
        ferry.kill()
        subprocess.run(["rm", "-rf", spool])
    os.remove(source)
    report("concurrent large uploads: peak RSS, MiB/s", (peaks, rates))
    return max(peaks), statistics.median(rates)


class PrivateIncus:
    """A private Incus daemon with one container, started and stopped by the benchmark."""

    def __init__(self):
        # Not under the 0700 scratch folder: the container's unprivileged root must be able
        # to reach its files.
        self.directory = tempfile.mkdtemp(prefix="ferry-bench-incus-", dir="/tmp")
        os.chmod(self.directory, 0o711)
        self.environment = dict(os.environ, INCUS_DIR=self.directory)

    def start(self):
        run([INCUS_ENV, "start", self.directory, "bench"], env=self.environment)

    def incus(self, *arguments):
        return run(["incus", *arguments], env=self.environment)

    def stop(self):
        subprocess.run([INCUS_ENV, "stop", self.directory], env=self.environment, capture_output=True)
        for mount in ("shmounts", "guestapi"):
            subprocess.run(["umount", os.path.join(self.directory, mount)], capture_output=True)
        subprocess.run(["rm", "-rf", self.directory])


def burst(scratch, daemon):
    """BURST_FILES x 4 KiB from 8 keep-alive clients into one directory of a real
    container, from the first request until the last file is delivered, in turn: Ferry
    (the symlink check on, its default), Ferry --follow-symlinks, the Go seed (one
    `incus file push` per file, 4 workers) and the Incus CLI's own limit (the same files
    pushed by 2 parallel calls, no HTTP). Every file is counted in the container."""
    turns = []
    for number in range(RUNS):
        turn = {}
        for name, arguments in (("ferry", ()), ("ferry followed", ("--follow-symlinks",))):
            settle()
            spool = os.path.join(scratch, f"burst-{number}")
            ferry = Ferry(spool, "--queue-capacity", "100000", *arguments, environment=daemon.environment)
            turn[name] = burst_once(daemon, ferry, f"/tmp/burst-{number}-{name.replace(' ', '-')}")
            ferry.kill()
            subprocess.run(["rm", "-rf", spool])
        settle()
        seed = Server([GO_SEED, "-dir", os.path.join(scratch, f"go-burst-{number}"), "-workers", "4"],
                      environment=daemon.environment)
        turn["go"] = burst_once(daemon, seed, f"/tmp/burst-{number}-go")
        seed.kill()
        subprocess.run(["rm", "-rf", os.path.join(scratch, f"go-burst-{number}")])
        settle()
        turn["cli"] = cli_limit(scratch, daemon, f"/tmp/burst-{number}-cli")
        turn["go ratio"] = turn["ferry"] / turn["go"]
        turn["cli ratio"] = turn["ferry"] / turn["cli"]
        turn["check ratio"] = turn["ferry"] / turn["ferry followed"]
        turns.append(turn)
    report("burst turns (files/s)", turns)
    return {key: statistics.median(t[key] for t in turns) for key in turns[0]}


def burst_once(daemon, server, directory, container="bench"):
    """Files/s of one burst against `server` into `container`, checked in the container."""
    started = time.monotonic()
    output = run([BURST, "-url", f"http://{server.address}/upload", "-files", str(BURST_FILES), "-clients", "8",
                  "-dir", directory, "-container", container])
    if f"accepted={BURST_FILES} " not in output:
        raise RuntimeError(f"burst: {output}")
    deadline = started + 600
    while server.delivered() < BURST_FILES:
        if time.monotonic() > deadline:
            raise RuntimeError("burst not delivered in 600 s")
        time.sleep(0.005)
    rate = BURST_FILES / (time.monotonic() - started)
    check_and_clear(daemon, directory, "burst")
    return rate


def check_and_clear(daemon, directory, what):
    """Fails unless the container's `directory` holds BURST_FILES files; then removes it."""
    count = daemon.incus("exec", "bench", "--", "sh", "-c", f"ls {directory} | wc -l").strip()
    if int(count) != BURST_FILES:
        raise RuntimeError(f"{what}: {count} files in the container, not {BURST_FILES}")
    daemon.incus("exec", "bench", "--", "rm", "-rf", directory)


def cli_limit(scratch, daemon, directory):
    """The Incus CLI's own rate: BURST_FILES files pushed by 2 parallel `incus file push`
    calls (half each), no HTTP, no spool."""
    halves = []
    for half in range(2):
        folder = os.path.join(scratch, f"cli-{half}")
        os.makedirs(folder, exist_ok=True)
        names = []
        for index in range(half, BURST_FILES, 2):
            name = os.path.join(folder, f"file-{index}")
            with open(name, "wb") as handle:
                handle.write(os.urandom(4096))
            names.append(name)
        halves.append(names)
    daemon.incus("exec", "bench", "--", "mkdir", "-p", directory)
    started = time.monotonic()
    pushes = [subprocess.Popen(["incus", "file", "push", "-q", *names, f"bench{directory}/"], env=daemon.environment)
              for names in halves]
    if any(push.wait() != 0 for push in pushes):
        raise RuntimeError("incus file push of the CLI reference failed")
    rate = BURST_FILES / (time.monotonic() - started)
    check_and_clear(daemon, directory, "cli reference")
    for half in range(2):
        subprocess.run(["rm", "-rf", os.path.join(scratch, f"cli-{half}")])
    return rate


def soak(scratch, daemon):
    """SOAK_SECONDS of mixed load on one Ferry delivering into a real container: 100 MiB
    uploads one after another, and bursts of 200 x 4 KiB from 8 clients, one after
    another. RSS and open descriptors sampled each second; then every accepted upload
    must be delivered, and every small file must be in the container."""
    settle()
    source = os.path.join(scratch, "soak-source")
    run(["dd", "if=/dev/urandom", f"of={source}", "bs=1M", "count=100", "status=none"])
    spool = os.path.join(scratch, "soak")
    ferry = Ferry(spool, "--queue-capacity", "100000", "--max-body-size", "101M", environment=daemon.environment)
    stop = threading.Event()
    counts = {"large": 0, "small": 0, "errors": []}

    def large():
        number = 0
        while not stop.is_set():
            _, status = post_file(ferry.address, source, f"/tmp/soak/large-{number % 4}", "-H", "X-Create-Dirs: true")
            number += 1
            if status == "202":
                counts["large"] += 1
            else:
                counts["errors"].append(f"large upload: {status}")

    def small():
        number = 0
        while not stop.is_set():
            output = run([BURST, "-url", f"http://{ferry.address}/upload", "-files", "200", "-clients", "8",
                          "-dir", f"/tmp/soak/small-{number}"])
            number += 1
            counts["small"] += int(re.search(r"accepted=(\d+)", output).group(1))

    loads = [threading.Thread(target=large), threading.Thread(target=small)]
    for load in loads:
        load.start()
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < SOAK_SECONDS:
        time.sleep(1)
        with open(f"/proc/{ferry.process.pid}/status") as status:
            rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        samples.append((rss, len(os.listdir(f"/proc/{ferry.process.pid}/fd"))))
    stop.set()
    for load in loads:
        load.join()
    accepted = counts["large"] + counts["small"]
    deadline = time.monotonic() + 600
    while ferry.delivered() < accepted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"soak: {ferry.delivered()} of {accepted} delivered after 600 s")
        time.sleep(0.05)
    _, text = ferry.get("/metrics")
    failed = counter(text, "ferry_push_attempts_total", [("outcome", "permanent")])
    ferry.kill()
    in_container = int(daemon.incus("exec", "bench", "--", "sh", "-c", "ls /tmp/soak/small-* | grep -c file-").strip())
    daemon.incus("exec", "bench", "--", "rm", "-rf", "/tmp/soak")
    subprocess.run(["rm", "-rf", spool, source])
    if counts["errors"] or in_container != counts["small"] or failed:
        raise RuntimeError(f"soak lost uploads: {counts['errors'][:3]}, {in_container} of {counts['small']} "
                           f"small files in the container, {failed} failed")
    third = max(1, len(samples) // 3)
    figures = {
        "large": counts["large"], "small": counts["small"],
        "rss first": max(r for r, _ in samples[:third]), "rss last": max(r for r, _ in samples[-third:]),
        "fds first": max(f for _, f in samples[:third]), "fds last": max(f for _, f in samples[-third:]),
    }
    report("soak", figures)
    return figures


def single_pushes(scratch, daemon):
    """The reference: `incus file push`, one file per call, one call after another."""
    source = os.path.join(scratch, "single-source")
    with open(source, "wb") as handle:
        handle.write(os.urandom(4096))
    rates = []
    for _ in range(RUNS):
        started = time.monotonic()
        for index in range(SINGLE_PUSHES):
            daemon.incus("file", "push", "-q", "-p", "--mode", "0644", "--uid", "0", "--gid", "0", source,
                         f"bench/tmp/single/file-{index}")
        rates.append(SINGLE_PUSHES / (time.monotonic() - started))
        daemon.incus("exec", "bench", "--", "rm", "-rf", "/tmp/single")
    report("one file per incus call, files/s", rates)
    return statistics.median(rates)


def reference_once(scratch, sync):
    """(files/s, p99 ms, max ms) of the create-write-close loop."""
    output = run([REFERENCE, os.path.join(scratch, "reference"), "5"] + (["--sync"] if sync else []))
    fields = dict(pair.split("=") for pair in output.split())
    return float(fields["files_per_second"]), float(fields["p99_ms"]), float(fields["max_ms"])


def recovery(scratch):
    spool = os.path.join(scratch, "recovery")
    stalled = os.path.join(ROOT, "bench", "stalled-incus")
    ferry = Ferry(spool, "--incus", stalled, "--workers", "1", "--no-fsync", "--queue-capacity", "1000000",
                  *NO_DAEMON)
    run(["wrk", "-t2", "-c50", "-d600s", "-s", os.path.join(ROOT, "bench", "upload.lua"), f"http://{ferry.address}"],
        env=dict(os.environ, FERRY_BENCH_LIMIT=str(RECOVERY_TASKS // 2), FERRY_BENCH_PREFIX="/tmp/recovery"))
    _, text = ferry.get("/metrics")
    tasks = int(counter(text, "ferry_http_requests_total", [("route", "/upload"), ("status", "202")]))
    ferry.kill(signal.SIGKILL)
    seconds = []
    for _ in range(RUNS):
        started = time.monotonic()
        ferry = Ferry(spool, "--incus", stalled, "--workers", "1", "--queue-capacity", "1000000", *NO_DAEMON)
        ready = time.monotonic() - started
        recovered = next(l for l in ferry.lines if "spool recovered" in l)
        if f"requeued={tasks}" not in recovered:
            raise RuntimeError(f"recovery did not requeue all {tasks} tasks: " + recovered)
        ferry.kill(signal.SIGKILL)
        seconds.append(ready)
    subprocess.run(["rm", "-rf", spool])
    report("recovery", {"tasks": tasks, "seconds": seconds})
    return tasks, statistics.median(seconds)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Linux {platform.release()}"


MIB = 1048576


def ingest_rows(scratch, daemon):
    durable, fast = ingest(scratch, fsync=True), ingest(scratch, fsync=False)
    return [
        ("small ingest, --fsync (accepted/s)", f"{durable['rate']:.0f}",
         f"{durable['ratio']:.2f} x loop with fsync (target 1.0)"),
        ("small ingest, --fsync p50 / p99 (ms)", f"{durable['p50']:.2f} / {durable['p99']:.2f}", ""),
        ("small ingest, --no-fsync, pushes held (accepted/s)", f"{fast['rate']:.0f}",
         f"{fast['c_ratio']:.2f} x raw C evhttp server (target 1.0); {fast['ratio']:.2f} x plain loop"),
        ("small ingest, --no-fsync p50 / p99 (ms)", f"{fast['p50']:.2f} / {fast['p99']:.2f}",
         f"p99 {fast['c_p99_ratio']:.2f} x the C server's (target 1.5)"),
        ("reference: raw C evhttp server, a file per body (accepted/s, p99 ms)",
         f"{fast['c']:.0f}, {fast['c_p99']:.2f}", ""),
        ("reference: create-write-close loop (files/s)", f"{fast['loop']:.0f}", ""),
        ("reference: that loop, one file's p99 / max (ms)", f"{fast['loop_p99']:.3f} / {fast['loop_max']:.1f}",
         "one thread, no contention"),
        ("reference: same loop with fsync per file (files/s)", f"{durable['loop']:.0f}", ""),
    ]


def lane_rows(scratch, daemon):
    lane = one_destination(scratch)
    return [("one destination, pushes held, consecutive runs (accepted/s)", " / ".join(f"{r:.0f}" for r in lane),
             f"slowest {min(lane) / max(lane):.2f} x fastest (flat within 20 %: 0.8)")]


def history_rows(scratch, daemon):
    kept = history(scratch)
    return [
        (f"{kept['accepted']:.0f} uploads, no-op pusher, retention on: accepted+delivered/s by third",
         " / ".join(f"{r:.0f}" for r in kept["rates"]),
         f"last {kept['rates'][2] / kept['rates'][0]:.2f} x first (target 0.8); target 5,000/s"),
        ("after them: RSS (MiB) / spool files / oldest task served",
         f"{kept['rss'] / MIB:.1f} / {kept['files']} / {'yes' if kept['oldest_served'] else 'NO'}",
         "targets 48 MiB / 100 files"),
    ]


def healthz_rows(scratch, daemon):
    probe = healthz(scratch)
    return [("reference: GET /healthz, 50 connections, p50 / p99 (ms)", f"{probe['p50']:.2f} / {probe['p99']:.2f}",
             f"{probe['rate']:.0f}/s: Ferry's HTTP path without the disk")]


def tus_patch(address, source, size):
    """Creates a tus upload of `size` bytes and sends `source` in one PATCH with curl -T;
    returns (seconds of the PATCH, HTTP status)."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port))
    metadata = "container YmVuY2g=,path L3RtcC90dXM="  # bench, /tmp/tus
    connection.request("POST", "/files/", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": metadata})
    created = connection.getresponse()
    created.read()
    if created.status != 201:
        raise RuntimeError(f"tus creation answered {created.status}")
    location = created.getheader("Location")
    started = time.monotonic()
    status = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PATCH", "-T", source,
                  "-H", "Tus-Resumable: 1.0.0", "-H", "Content-Type: application/offset+octet-stream",
                  "-H", "Upload-Offset: 0", "-H", "Expect:", f"http://{address}{location}"])
    return time.monotonic() - started, status


def tus_against_upload(scratch):
    """1 GiB in one tus PATCH and in one POST /upload, in turn (and an older binary's
    /upload with BASELINE): MiB/s, and the per-turn ratios."""
    source = os.path.join(scratch, "tus-source")
    run(["dd", "if=/dev/urandom", f"of={source}", "bs=1M", f"count={LARGE_MIB}", "status=none"])
    binaries = [("upload", FERRY), ("tus", FERRY)] + ([("baseline", BASELINE)] if BASELINE else [])
    turns = []
    for number in range(RUNS):
        turn = {}
        for name, binary in binaries:
            settle()
            spool = os.path.join(scratch, f"tus-{name}-{number}")
            ferry = Ferry(spool, "--incus", "/bin/true", "--max-body-size", f"{LARGE_MIB + 1}M", "--no-fsync",
                          *NO_DAEMON, binary=binary)
            if name == "tus":
                seconds, status = tus_patch(ferry.address, source, LARGE_MIB * MIB)
                expected = "204"
            else:
                seconds, status = post_file(ferry.address, source, "/tmp/large")
                expected = "202"
            ferry.kill()
            subprocess.run(["rm", "-rf", spool])
            if status != expected:
                raise RuntimeError(f"{name} answered {status}")
            turn[name] = LARGE_MIB / seconds
        turn["tus ratio"] = turn["tus"] / turn["upload"]
        if BASELINE:
            turn["hashing ratio"] = turn["upload"] / turn["baseline"]
        turns.append(turn)
    os.remove(source)
    report("tus against /upload turns (MiB/s)", turns)
    return {key: statistics.median(t[key] for t in turns) for key in turns[0]}


def resume_overhead(scratch):
    """With --fsync: HEAD, and HEAD plus a 64 KiB PATCH from the offset it gives, each on
    a new connection (as a client that lost its network does); medians in ms."""
    piece = os.urandom(64 << 10)
    pieces = 50
    spool = os.path.join(scratch, "resume")
    ferry = Ferry(spool, "--incus", "/bin/true", *NO_DAEMON)
    host, port = ferry.address.rsplit(":", 1)

    def request(method, target, headers, body=None):
        connection = http.client.HTTPConnection(host, int(port))
        connection.request(method, target, body=body, headers={"Tus-Resumable": "1.0.0", **headers})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return answer

    created = request("POST", "/files/", {"Upload-Length": str(len(piece) * pieces),
                                          "Upload-Metadata": "container YmVuY2g=,path L3RtcC9yZXN1bWU="})
    location = created.getheader("Location")
    heads, resumes = [], []
    for _ in range(pieces):
        started = time.monotonic()
        offset = int(request("HEAD", location, {}).getheader("Upload-Offset"))
        heads.append(time.monotonic() - started)
        answer = request("PATCH", location, {"Content-Type": "application/offset+octet-stream",
                                             "Upload-Offset": str(offset)}, piece)
        resumes.append(time.monotonic() - started)
        if answer.status != 204:
            raise RuntimeError(f"PATCH answered {answer.status}")
    ferry.kill()
    subprocess.run(["rm", "-rf", spool])
    return statistics.median(heads) * 1000, statistics.median(resumes) * 1000


def tus_rows(scratch, daemon):
    figures = tus_against_upload(scratch)
    head, resume = resume_overhead(scratch)
    rows = [
        (f"tus: {LARGE_MIB} MiB in one PATCH, --no-fsync (MiB/s)", f"{figures['tus']:.0f}",
         f"{figures['tus ratio']:.2f} x POST /upload of the same file (target 0.9)"),
        (f"tus: POST /upload of the same {LARGE_MIB} MiB, --no-fsync (MiB/s)", f"{figures['upload']:.0f}", ""),
        ("tus: resuming, --fsync: HEAD; HEAD + a 64 KiB PATCH (ms)", f"{head:.1f}; {resume:.1f}", ""),
    ]
    if BASELINE:
        rows.append((f"POST /upload {LARGE_MIB} MiB, --no-fsync, the baseline binary (MiB/s)",
                     f"{figures['baseline']:.0f}",
                     f"hashing: this build at {figures['hashing ratio']:.2f} x it (target 0.9)"))
    return rows


def large_rows(scratch, daemon):
    large = large_upload(scratch)
    return [
        (f"large upload, {LARGE_MIB} MiB, --no-fsync (MiB/s)", f"{large['--no-fsync']:.0f}",
         f"{large['fast ratio']:.2f} x the Go seed, which neither hashes nor syncs (target 1.0)"),
        (f"large upload, {LARGE_MIB} MiB, --fsync, durable 202 (MiB/s)", f"{large['--fsync']:.0f}",
         f"{large['durable ratio']:.2f} x the Go seed, which does not sync (target 0.8)"),
        ("large upload: Ferry peak RSS (MiB)", f"{large['peak rss'] / MIB:.1f}", "target 32 MiB"),
        ("reference: the Go seed (net/http, io.Copy to a temp file) (MiB/s)", f"{large['go']:.0f}", ""),
        ("reference: dd to the spool's file system, conv=fdatasync (MiB/s)", f"{large['dd']:.0f}", ""),
    ]


def concurrent_rows(scratch, daemon):
    peak, rate = concurrent_large(scratch)
    return [(f"{CONCURRENT} concurrent {CONCURRENT_MIB} MiB uploads, --fsync: peak RSS (MiB), MiB/s in all",
             f"{peak / MIB:.1f}, {rate:.0f}", "target 64 MiB")]


def burst_rows(scratch, daemon):
    figures = burst(scratch, daemon)
    single = single_pushes(scratch, daemon)
    return [
        (f"burst {BURST_FILES} x 4 KiB, 8 clients, into real Incus (files/s)", f"{figures['ferry']:.0f}",
         f"{figures['go ratio']:.1f} x the Go seed (target 5); {figures['cli ratio']:.2f} x the CLI's 2-call "
         "limit (target 0.7)"),
        ("that burst with --follow-symlinks (files/s)", f"{figures['ferry followed']:.0f}",
         f"symlink check on: {figures['check ratio']:.2f} x off"),
        ("reference: the Go seed, one incus call per file, 4 workers (files/s)", f"{figures['go']:.0f}", ""),
        ("reference: the Incus CLI, the burst's files in 2 parallel calls (files/s)", f"{figures['cli']:.0f}", ""),
        ("reference: incus file push, one file per call, one at a time (files/s)", f"{single:.1f}", ""),
    ]


class RemoteIncus(PrivateIncus):
    """A second private daemon, on HTTPS on a loopback port, added as remote `rbench` to a
    private client config beside the first daemon's: pushes into it go over TLS."""

    def __init__(self, local):
        super().__init__()
        self.port = free_port()
        self.configuration = tempfile.mkdtemp(prefix="ferry-bench-conf-", dir="/tmp")
        self.environment = dict(self.environment, FERRY_INCUS_HTTPS=f"127.0.0.1:{self.port}")
        # What Ferry runs with: the first daemon as `local`, this one as `rbench`.
        self.client = dict(local.environment, INCUS_CONF=self.configuration)

    def start(self):
        super().start()
        run([INCUS_ENV, "add-remote", self.directory, "rbench"], env=self.client)

    def stop(self):
        super().stop()
        subprocess.run(["rm", "-rf", self.configuration])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def remote_rows(scratch, daemon):
    """The burst of `burst` (BURST_FILES x 4 KiB, 8 clients) into a container of this
    host's daemon and, in turn, into one on a remote daemon reached over HTTPS (on the same
    machine: what the remote costs is TLS, the symlink check through the TLS tunnel, and
    the remote API, not a network)."""
    remote = RemoteIncus(daemon)
    remote.start()
    try:
        turns = []
        for number in range(RUNS):
            turn = {}
            for name, container, arguments in (("local", "bench", ()), ("remote", "rbench:bench",
                                                                         ("--remote", "rbench"))):
                settle()
                spool = os.path.join(scratch, f"remote-{number}-{name}")
                ferry = Ferry(spool, "--queue-capacity", "100000", *arguments, environment=remote.client)
                directory = f"/tmp/remote-{number}-{name}"
                turn[name] = burst_once(remote if name == "remote" else daemon, ferry, directory, container)
                ferry.kill()
                subprocess.run(["rm", "-rf", spool])
            turns.append(turn)
        report("remote turns (files/s)", turns)
    finally:
        remote.stop()
    local = statistics.median(t["local"] for t in turns)
    far = statistics.median(t["remote"] for t in turns)
    ratio = statistics.median(t["remote"] / t["local"] for t in turns)
    overhead = statistics.median((1 / t["remote"] - 1 / t["local"]) * 1000 for t in turns)
    return [
        (f"burst {BURST_FILES} x 4 KiB into a remote daemon over HTTPS (files/s)", f"{far:.0f}",
         f"{ratio:.2f} x the same burst into this host's daemon ({local:.0f} files/s); "
         f"{overhead:.2f} ms more per file"),
    ]


def soak_rows(scratch, daemon):
    figures = soak(scratch, daemon)
    return [
        (f"soak {SOAK_SECONDS:.0f} s: 100 MiB and 4 KiB uploads into real Incus, all delivered",
         f"{figures['large']} large, {figures['small']} small", "every 202 delivered: yes"),
        ("soak: RSS (MiB) max of first / last third", f"{figures['rss first'] / MIB:.1f} / {figures['rss last'] / MIB:.1f}",
         "flat"),
        ("soak: open descriptors max of first / last third", f"{figures['fds first']} / {figures['fds last']}", "flat"),
    ]


def recovery_rows(scratch, daemon):
    tasks, seconds = recovery(scratch)
    return [(f"recovery of {tasks} unfinished tasks (s to listening)", f"{seconds:.2f}", "seconds, not minutes")]


# name: (rows, needs a private Incus daemon)
SECTIONS = {
    "ingest": (ingest_rows, False), "lane": (lane_rows, False), "history": (history_rows, False),
    "healthz": (healthz_rows, False), "large": (large_rows, False), "concurrent": (concurrent_rows, False),
    "tus": (tus_rows, False),
    "burst": (burst_rows, True), "remote": (remote_rows, True), "soak": (soak_rows, True),
    "recovery": (recovery_rows, False),
}


def build_references():
    run(["gcc", "-O2", "-o", REFERENCE, os.path.join(ROOT, "bench", "reference_files.c")])
    run(["gcc", "-O2", "-o", REFERENCE_SERVER, os.path.join(ROOT, "bench", "reference_server.c"), "-levent"])
    for name, target in (("seed", GO_SEED), ("burst", BURST)):
        run(["go", "build", "-o", target, f"./{name}"], cwd=os.path.join(ROOT, "bench", "go"))


def main():
    build_references()
    chosen = [name for name in SECTIONS if not ONLY or name in ONLY]
    scratch = tempfile.mkdtemp(prefix="ferry-bench-", dir=os.environ.get("FERRY_BENCH_DIR", "/var/tmp"))
    rows = []
    daemon = None
    try:
        for name in chosen:
            measure, needs_daemon = SECTIONS[name]
            if needs_daemon and daemon is None:
                daemon = PrivateIncus()
                daemon.start()
            rows += measure(scratch, daemon)
    finally:
        if daemon is not None:
            daemon.stop()
        subprocess.run(["rm", "-rf", scratch])

    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    header = (f"### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}\n\n"
              f"Machine: {machine()}. Medians of {RUNS} runs; ingest runs {SECONDS} s each"
              + (f"; sections: {', '.join(chosen)}" if ONLY else "") + ".\n")
    table = ["| figure | value | ratio |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = header + "\n" + "\n".join(table) + "\n"
    print(text)
    if not os.environ.get("FERRY_BENCH_NO_RECORD"):
        with open(os.path.join(ROOT, "BENCHMARKS.md"), "a") as record:
            record.write("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
