#!/usr/bin/env python3
"""`make bench`: Ferry's figures and their references, measured in the same run.

Builds release, starts Ferry on scratch spools, and prints one table (appended to
BENCHMARKS.md with date, commit and machine). Every figure is the median of RUNS runs.

  1. small ingest: wrk, 4 KiB POSTs (each to its own path), 50 connections, 10 s, only
     202s counted, with and without --fsync. Pushes are held (bench/stalled-incus), so the
     figure is the cost of receiving and committing; delivery has its own figure (3).
     Each Ferry run is paired with a run of its reference (4) just before it, and the
     ratio is the median of the per-pair ratios.
  2. large upload: one 2 GiB body with curl (streamed from a file), MB/s until the 202
     and Ferry's peak RSS; reference: dd writing 2 GiB to the same file system.
  3. drain: 1,000 x 4 KiB uploads into one directory of a container of a real (private)
     Incus, from the first request until the last file is delivered; reference:
     `incus file push` of one file per call. Each run is made with the symlink check
     (the default) and again with --follow-symlinks; the ratio is the per-run median.
  4. references: a plain C loop creating, writing and closing 4 KiB files on the spool's
     file system, with and without an fsync per file.
  5. recovery: start-up time with 100,000 unfinished tasks in the spool.
  6. one destination: pushes held, every upload to the same path, RUNS consecutive wrk
     runs of 8 s against one Ferry (the backlog of one lane grows run after run); the
     figure is each run's accepted/s and the slowest over the fastest (flat is 1.0).
  7. history: 150,000 uploads to distinct paths delivered by a no-op pusher (/bin/true)
     with retention on, in thirds: accepted+delivered/s of each third, then RSS, the
     spool's files and whether the oldest task is still served.
"""
import datetime
import http.client
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.path.join(ROOT, ".build", "release", "ferry")
REFERENCE = os.path.join(ROOT, ".build", "bench-reference-files")
RUNS = int(os.environ.get("FERRY_BENCH_RUNS", "3"))
SECONDS = os.environ.get("FERRY_BENCH_SECONDS", "10")
RECOVERY_TASKS = int(os.environ.get("FERRY_BENCH_RECOVERY_TASKS", "100000"))
HISTORY = int(os.environ.get("FERRY_BENCH_HISTORY", "150000"))
LARGE_MIB = int(os.environ.get("FERRY_BENCH_LARGE_MIB", "2048"))
DRAIN_FILES = int(os.environ.get("FERRY_BENCH_DRAIN_FILES", "1000"))
SINGLE_PUSHES = int(os.environ.get("FERRY_BENCH_SINGLE_PUSHES", "40"))
INCUS_ENV = os.path.join(ROOT, "scripts", "incus-env.sh")
SETTLE = float(os.environ.get("FERRY_BENCH_SETTLE", "11"))
STALLED = os.path.join(ROOT, "bench", "stalled-incus")
# Runs with a stand-in pusher have no Incus daemon to check destinations against: the
# symlink check would hold every push waiting for one, so it is skipped (its cost has its
# own figure, in the drain into a real daemon).
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

    def __init__(self, spool, *arguments):
        self.process = subprocess.Popen(
            [FERRY, "--listen", "127.0.0.1:0", "--spool", spool, "--log-level", "notice", *arguments],
            stderr=subprocess.PIPE, text=True, start_new_session=True)
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


def ingest(scratch, fsync):
    """Ferry's small ingest, each run right after a run of its reference loop."""
    results = []
    for number in range(RUNS):
        settle()
        loop, loop_p99, loop_max = reference_once(scratch, sync=fsync)
        settle()
        spool = os.path.join(scratch, f"ingest-{'fsync' if fsync else 'nofsync'}-{number}")
        ferry = Ferry(spool, "--incus", STALLED, "--workers", "1", "--queue-capacity", "100000000",
                      "--fsync" if fsync else "--no-fsync", *NO_DAEMON)
        output = run(["wrk", "-t2", "-c50", f"-d{SECONDS}s", "-s", os.path.join(ROOT, "bench", "upload.lua"),
                      f"http://{ferry.address}"])
        ferry.kill()
        line = next(l for l in output.splitlines() if l.startswith("FERRY "))
        fields = dict(pair.split("=") for pair in line.split()[1:])
        rate = int(fields["accepted"]) / float(fields["seconds"])
        results.append({
            "rate": rate, "loop": loop, "ratio": rate / loop, "loop_p99": loop_p99, "loop_max": loop_max,
            "p50": float(fields["p50_ms"]), "p99": float(fields["p99_ms"]),
            "refused": int(fields["refused"]) + int(fields["errors"]),
        })
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


def large_upload(scratch):
    """One LARGE_MIB body through curl (streamed with -T), against dd on the same disk."""
    source = os.path.join(scratch, "large-source")
    run(["dd", "if=/dev/urandom", f"of={source}", "bs=1M", f"count={LARGE_MIB}", "status=none"])
    rates, peaks, dd_rates = [], [], []
    for number in range(RUNS):
        settle()
        target = os.path.join(scratch, "dd-target")
        started = time.monotonic()
        run(["dd", f"if={source}", f"of={target}", "bs=1M", "conv=fdatasync", "status=none"])
        dd_rates.append(LARGE_MIB / (time.monotonic() - started))
        os.remove(target)
        spool = os.path.join(scratch, f"large-{number}")
        settle()
        ferry = Ferry(spool, "--incus", "/bin/true", "--max-body-size", f"{LARGE_MIB + 1}M", *NO_DAEMON)
        started = time.monotonic()
        output = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-T", source,
                      "-H", "X-Container-Name: bench", "-H", "X-File-Path: /tmp/large",
                      "-H", "Expect:", f"http://{ferry.address}/upload"])
        seconds = time.monotonic() - started
        if output.strip() != "202":
            raise RuntimeError(f"large upload answered {output}")
        rates.append(LARGE_MIB / seconds)
        peaks.append(ferry.peak_rss())
        ferry.kill()
        subprocess.run(["rm", "-rf", spool])
    os.remove(source)
    report("large upload MB/s, peak RSS, dd MB/s", (rates, peaks, dd_rates))
    return statistics.median(rates), statistics.median(peaks), statistics.median(dd_rates)


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


def drain(scratch, daemon):
    """DRAIN_FILES uploads into one container directory, until all are delivered: each run
    with the symlink check (the default) and, right after, with --follow-symlinks.

    Returns the median rate of each, and the median of the per-run ratios."""
    checked, followed = [], []
    for number in range(RUNS):
        checked.append(drain_once(scratch, daemon, f"{number}-checked"))
        followed.append(drain_once(scratch, daemon, f"{number}-followed", "--follow-symlinks"))
    report("drain files/s, checked and --follow-symlinks", (checked, followed))
    ratios = [c / f for c, f in zip(checked, followed)]
    return statistics.median(checked), statistics.median(followed), statistics.median(ratios)


def drain_once(scratch, daemon, name, *arguments):
    """One drain run: files/s from the first request until the last file is delivered."""
    body = os.urandom(4096)
    directory = f"/tmp/drain-{name}"
    spool = os.path.join(scratch, f"drain-{name}")
    os.environ["INCUS_DIR"] = daemon.directory
    ferry = Ferry(spool, "--queue-capacity", "100000", *arguments)
    host, port = ferry.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port))
    started = time.monotonic()
    for index in range(DRAIN_FILES):
        connection.request("POST", "/upload", body=body, headers={
            "X-Container-Name": "bench", "X-File-Path": f"{directory}/file-{index}",
            "X-Create-Dirs": "true"})
        response = connection.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"drain upload {index}: {response.status}")
    deadline = started + 600
    while ferry.delivered() < DRAIN_FILES:
        if time.monotonic() > deadline:
            raise RuntimeError("drain did not finish in 600 s")
        time.sleep(0.005)
    rate = DRAIN_FILES / (time.monotonic() - started)
    ferry.kill()
    count = daemon.incus("exec", "bench", "--", "sh", "-c", f"ls {directory} | wc -l").strip()
    if int(count) != DRAIN_FILES:
        raise RuntimeError(f"drain: {count} files in the container, not {DRAIN_FILES}")
    daemon.incus("exec", "bench", "--", "rm", "-rf", directory)
    subprocess.run(["rm", "-rf", spool])
    return rate


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


def main():
    run(["gcc", "-O2", "-o", REFERENCE, os.path.join(ROOT, "bench", "reference_files.c")])
    scratch = tempfile.mkdtemp(prefix="ferry-bench-", dir=os.environ.get("FERRY_BENCH_DIR", "/var/tmp"))
    try:
        durable = ingest(scratch, fsync=True)
        fast = ingest(scratch, fsync=False)
        lane = one_destination(scratch)
        kept = history(scratch)
        probe = healthz(scratch)
        large_rate, large_peak, dd_rate = large_upload(scratch)
        daemon = PrivateIncus()
        try:
            daemon.start()
            drained, drained_following, symlink_ratio = drain(scratch, daemon)
            single = single_pushes(scratch, daemon)
        finally:
            daemon.stop()
        recovered_tasks, recovered = recovery(scratch)
    finally:
        subprocess.run(["rm", "-rf", scratch])

    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip()
    rows = [
        ("small ingest, --fsync (accepted/s)", f"{durable['rate']:.0f}",
         f"{durable['ratio']:.2f} x loop with fsync (target 1.0)"),
        ("small ingest, --fsync p50 / p99 (ms)", f"{durable['p50']:.2f} / {durable['p99']:.2f}", ""),
        ("small ingest, --no-fsync (accepted/s)", f"{fast['rate']:.0f}",
         f"{fast['ratio']:.2f} x plain loop (target 0.6)"),
        ("small ingest, --no-fsync p50 / p99 (ms)", f"{fast['p50']:.2f} / {fast['p99']:.2f}",
         f"p99 target 20 ms: {'met' if fast['p99'] <= 20 else 'missed'}"),
        ("one destination, pushes held, consecutive runs (accepted/s)", " / ".join(f"{r:.0f}" for r in lane),
         f"slowest {min(lane) / max(lane):.2f} x fastest (flat within 20 %: 0.8)"),
        (f"{kept['accepted']:.0f} uploads, no-op pusher, retention on: accepted+delivered/s by third",
         " / ".join(f"{r:.0f}" for r in kept["rates"]),
         f"last {kept['rates'][2] / kept['rates'][0]:.2f} x first (target 0.8); target 5,000/s"),
        ("after them: RSS (MiB) / spool files / oldest task served",
         f"{kept['rss'] / 1048576:.1f} / {kept['files']} / {'yes' if kept['oldest_served'] else 'NO'}",
         "targets 48 MiB / 100 files"),
        (f"large upload, {LARGE_MIB} MiB (MB/s)", f"{large_rate:.0f}", f"{large_rate / dd_rate:.2f} x dd (target 0.85)"),
        ("large upload: Ferry peak RSS (MiB)", f"{large_peak / 1048576:.1f}", "target 32 MiB"),
        (f"drain {DRAIN_FILES} x 4 KiB into real Incus (files/s)", f"{drained:.0f}",
         f"{drained / single:.1f} x one file per incus call (target 5)"),
        ("that drain with --follow-symlinks (files/s)", f"{drained_following:.0f}",
         f"symlink check on: {symlink_ratio:.2f} x off (target 0.9)"),
        ("reference: create-write-close loop (files/s)", f"{fast['loop']:.0f}", ""),
        ("reference: that loop, one file's p99 / max (ms)", f"{fast['loop_p99']:.3f} / {fast['loop_max']:.1f}",
         "one thread, no contention"),
        ("reference: GET /healthz, 50 connections, p50 / p99 (ms)", f"{probe['p50']:.2f} / {probe['p99']:.2f}",
         f"{probe['rate']:.0f}/s: Ferry's HTTP path without the disk"),
        ("reference: same loop with fsync per file (files/s)", f"{durable['loop']:.0f}", ""),
        ("reference: dd to the spool's file system, conv=fdatasync (MB/s)", f"{dd_rate:.0f}", ""),
        ("reference: incus file push, one file per call (files/s)", f"{single:.1f}", ""),
        (f"recovery of {recovered_tasks} unfinished tasks (s to listening)", f"{recovered:.2f}", "seconds, not minutes"),
    ]
    header = (f"### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}\n\n"
              f"Machine: {machine()}. Medians of {RUNS} runs; ingest runs {SECONDS} s each.\n")
    table = ["| figure | value | ratio |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = header + "\n" + "\n".join(table) + "\n"
    print(text)
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "a") as record:
        record.write("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
