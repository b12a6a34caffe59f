#!/usr/bin/env python3
"""Checks docs/openapi.yaml, and optionally a running Ferry against it.

    scripts/check-openapi.py                      # the spec is valid OpenAPI 3.0
    scripts/check-openapi.py --base-url http://127.0.0.1:8080 [--token TOKEN]

With --base-url, real requests go to Ferry (one small upload among them, delivered like
any other: pick --container and --file-path accordingly). For each answer the checker
verifies that its status is documented for the operation, that a JSON body validates
against the documented schema, and that the documented required headers are there.
One line per check; exit status 1 on any failure.

Needs only the standard library and openapi-spec-validator (which brings
openapi-schema-validator, jsonschema and PyYAML); scripts/install-deps.sh installs it.
"""

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

try:
    import yaml
    from openapi_schema_validator import OAS30Validator, oas30_format_checker
    from openapi_spec_validator import validate as validate_spec
except ImportError as error:
    sys.exit(f"check-openapi: {error}; run scripts/install-deps.sh")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SPEC = os.path.join(HERE, "..", "docs", "openapi.yaml")


class Checker:
    def __init__(self, spec, base_url, token, timeout):
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.failures = 0
        # Unknown until the first answer: a binary older than X-Request-Id sends none.
        self.sends_request_id = None

    # -- reporting --------------------------------------------------------------------

    def report(self, name, problems, notes=()):
        status = "FAIL" if problems else "ok"
        text = "; ".join(list(problems) + list(notes))
        print(f"{status:4} {name}" + (f": {text}" if text else ""), flush=True)
        if problems:
            self.failures += 1

    # -- the spec ---------------------------------------------------------------------

    def resolve(self, node):
        """The node with every local $ref replaced by what it points to (deeply)."""
        if isinstance(node, dict):
            if "$ref" in node:
                target = self.spec
                for part in node["$ref"].lstrip("#/").split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                return self.resolve(target)
            return {key: self.resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        return node

    def operation(self, template, method):
        return self.resolve(self.spec["paths"][template][method.lower()])

    # -- HTTP -------------------------------------------------------------------------

    def request(self, method, path, headers=None, body=None, auth=True):
        headers = dict(headers or {})
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers.setdefault("Content-Type", "application/octet-stream")
        req = urllib.request.Request(
            self.base_url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as answer:
            with answer:
                return answer.code, answer.headers, answer.read()

    # -- one exchange -----------------------------------------------------------------

    def exchange(self, name, method, path, template=None, expect=None, headers=None,
                 body=None, response=None, auth=True):
        """Sends a request and checks its answer against the spec.

        template: the spec's path (None with `response`, a component for paths not in the spec).
        expect: the statuses this check wants (a subset of what the spec documents).
        Returns (status, headers, parsed JSON or raw body) or None when the request failed.
        """
        request_id = "check-" + uuid.uuid4().hex[:12]
        headers = dict(headers or {})
        headers["X-Request-Id"] = request_id
        problems, notes = [], []
        try:
            status, answer_headers, raw = self.request(method, path, headers, body, auth)
        except OSError as error:
            self.report(f"{method} {path}", [f"no answer: {error}"])
            return None
        label = f"{method} {path} -> {status}"
        if name:
            label = f"{name}: {label}"
        if expect is not None and status not in expect:
            problems.append(f"expected {' or '.join(map(str, sorted(expect)))}"
                            + f" (body {raw[:200]!r})")
        if response is None:
            responses = self.operation(template, method)["responses"]
            response = responses.get(str(status)) or responses.get("default")
            if response is None:
                problems.append(f"status {status} is not documented for {method.lower()} {template}")
                self.report(label, problems)
                return status, answer_headers, raw
        else:
            response = self.resolve(response)

        # Headers.
        if self.sends_request_id is None:
            self.sends_request_id = answer_headers.get("X-Request-Id") is not None
            if not self.sends_request_id:
                print("skip X-Request-Id: this binary sends none (it predates them); "
                      "not required below", flush=True)
        for header_name, header in response.get("headers", {}).items():
            value = answer_headers.get(header_name)
            if header_name == "X-Request-Id":
                if not self.sends_request_id:
                    continue
                if value is not None and value != request_id:
                    problems.append(f"X-Request-Id {value!r} is not the one sent ({request_id!r})")
            if value is None:
                if header.get("required"):
                    problems.append(f"required header {header_name} missing")
                continue
            schema = header.get("schema")
            if schema:
                typed = value
                if schema.get("type") == "integer":
                    try:
                        typed = int(value)
                    except ValueError:
                        problems.append(f"header {header_name} {value!r} is not an integer")
                        continue
                error = self.schema_error(schema, typed)
                if error:
                    problems.append(f"header {header_name} {value!r}: {error}")

        # Body.
        content = response.get("content")
        media_type = (answer_headers.get("Content-Type") or "").split(";")[0].strip().lower()
        parsed = raw
        if method == "HEAD":
            if raw:
                problems.append(f"HEAD answer has a body of {len(raw)} bytes")
        elif not content:
            if raw:
                problems.append(f"undocumented body ({len(raw)} bytes, {media_type or 'no type'})")
        else:
            documented = {key.split(";")[0].strip().lower(): (key, value)
                          for key, value in content.items()}
            entry = documented.get(media_type) or documented.get("*/*")
            if entry is None:
                problems.append(f"Content-Type {media_type or 'none'} is not documented "
                                f"({', '.join(content)})")
            else:
                key, media = entry
                wanted_params = [p.strip() for p in key.split(";")[1:]]
                got_params = [p.strip() for p in answer_headers.get("Content-Type", "").split(";")[1:]]
                for param in wanted_params:
                    if param not in got_params:
                        problems.append(f"Content-Type lacks {param}")
                if media_type == "application/json":
                    try:
                        parsed = json.loads(raw)
                    except ValueError as error:
                        problems.append(f"body is not JSON: {error}")
                    else:
                        error = self.schema_error(media.get("schema", {}), parsed)
                        if error:
                            problems.append(f"body does not match the schema: {error}")
                        else:
                            notes.append("body matches")
                            if isinstance(parsed, dict) and "error" in parsed:
                                notes.append(f"error={parsed['error']}")
        self.report(label, problems, notes)
        return status, answer_headers, parsed

    @staticmethod
    def schema_error(schema, instance):
        validator = OAS30Validator(schema, format_checker=oas30_format_checker)
        error = next(iter(sorted(validator.iter_errors(instance), key=lambda e: e.path)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"

    # -- the checks -------------------------------------------------------------------

    def run(self, container, file_path):
        self.exchange("health", "GET", "/healthz", "/healthz", {200})
        self.exchange("health", "HEAD", "/healthz", "/healthz", {200})

        upload_headers = {
            "X-Container-Name": container,
            "X-File-Path": file_path,
            "X-Host-Path": "ferry-openapi-check.txt",
        }
        answer = self.exchange("upload", "POST", "/upload", "/upload", {202},
                               upload_headers, b"checked by scripts/check-openapi.py\n")
        location = None
        if answer and answer[0] == 202:
            location = answer[1].get("Location")
        missing = {key: value for key, value in upload_headers.items() if key != "X-Container-Name"}
        self.exchange("upload without X-Container-Name", "POST", "/upload", "/upload", {400},
                      missing, b"x")
        key = "check-" + uuid.uuid4().hex
        first = self.exchange("upload with Idempotency-Key", "POST", "/upload", "/upload", {202},
                              {**upload_headers, "Idempotency-Key": key}, b"once\n")
        again = self.exchange("same Idempotency-Key again", "POST", "/upload", "/upload", {202},
                              {**upload_headers, "Idempotency-Key": key}, b"once\n")
        if first and again and first[0] == again[0] == 202:
            same = first[1].get("Location") == again[1].get("Location")
            self.report("repeated Idempotency-Key answers the first task",
                        [] if same else [f"{first[1].get('Location')} != {again[1].get('Location')}"])

        task_path = None
        if location:
            parsed = urllib.parse.urlsplit(location)
            task_path = parsed.path
            state = None
            deadline = time.monotonic() + 10
            while True:
                answer = self.exchange("task from Location", "GET", task_path, "/tasks/{id}", {200}) \
                    if state is None else self.quiet_state(task_path)
                if answer is None or answer[0] != 200 or not isinstance(answer[2], dict):
                    break
                state = answer[2].get("state")
                if state in ("delivered", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.exchange("task from Location", "HEAD", task_path, "/tasks/{id}", {200})
            if state == "failed":
                # A real Incus without that container: the task is a dead letter, and a
                # retry is then accepted.
                self.exchange("retry a failed task", "POST", task_path + "/retry",
                              "/tasks/{id}/retry", {202})
            else:
                self.exchange(f"retry a {state} task", "POST", task_path + "/retry",
                              "/tasks/{id}/retry", {409})
        else:
            self.report("task from Location", ["no Location from the upload; task checks skipped"])

        self.check_tus(container, file_path)
        self.check_console(container, file_path)
        self.exchange("list", "GET", "/tasks", "/tasks", {200})
        page = self.exchange("list, one per page", "GET", "/tasks?limit=1", "/tasks", {200})
        if page and page[0] == 200 and isinstance(page[2], dict) and page[2].get("next"):
            self.exchange("list, next page", "GET",
                          "/tasks?limit=1&after=" + urllib.parse.quote(page[2]["next"]), "/tasks", {200})
        self.exchange("list with a bad limit", "GET", "/tasks?limit=0", "/tasks", {400})
        self.exchange("search by id", "GET", "/tasks?id_prefix=0", "/tasks", {200})
        self.exchange("bulk retry of dead letters", "POST", "/tasks/retry?state=failed", "/tasks/retry", {200})
        self.exchange("bulk action without state", "POST", "/tasks/retry", "/tasks/retry", {400})
        self.exchange("unknown task", "GET", "/tasks/unknown", "/tasks/{id}", {404})
        self.exchange("unknown task", "DELETE", "/tasks/unknown", "/tasks/{id}", {404})
        self.exchange("bulk delete of dead letters", "DELETE", "/tasks?state=failed", "/tasks", {200})
        self.exchange("unknown route", "GET", "/nope", expect={404},
                      response=self.spec["components"]["responses"]["NoRoute"])
        self.exchange("wrong method", "PUT", "/upload", expect={405},
                      response=self.spec["components"]["responses"]["MethodNotAllowed"], body=b"")

        for path in ("/readyz", "/metrics"):
            try:
                status, _, _ = self.request("GET", path, auth=False)
            except OSError as error:
                self.report(f"GET {path}", [f"no answer: {error}"])
                continue
            if status == 404:
                print(f"skip GET {path}: 404, this binary does not serve it", flush=True)
                continue
            if path == "/readyz":
                self.exchange("readiness", "GET", path, path, {200, 503}, auth=False)
                self.exchange("readiness", "HEAD", path, path, {200, 503}, auth=False)
            else:
                answer = self.exchange("metrics", "GET", path, path, {200}, auth=False)
                if answer and answer[0] == 200:
                    self.check_metric_names(answer[2])

    def check_tus(self, container, file_path):
        """tus at /files/: discovery, creation, HEAD, PATCHes right and wrong, termination."""
        def b64(text):
            return base64.b64encode(text.encode()).decode()

        tus = {"Tus-Resumable": "1.0.0"}
        patch_type = {"Content-Type": "application/offset+octet-stream"}
        self.exchange("tus discovery", "OPTIONS", "/files/", "/files/", {204}, auth=False)
        metadata = f"container {b64(container)},path {b64(file_path)},filename {b64('ferry-openapi-tus.txt')}"
        self.exchange("tus without Tus-Resumable", "POST", "/files/", "/files/", {412},
                      {"Upload-Length": "4", "Upload-Metadata": metadata})
        self.exchange("tus without a length", "POST", "/files/", "/files/", {400},
                      {**tus, "Upload-Metadata": metadata})
        created = self.exchange("tus creation", "POST", "/files/", "/files/", {201},
                                {**tus, "Upload-Length": "8", "Upload-Metadata": metadata})
        if not created or created[0] != 201:
            self.report("tus", ["no upload was created; tus checks skipped"])
            return
        upload = created[1].get("Location")
        self.exchange("tus offset", "HEAD", upload, "/files/{id}", {200}, tus)
        self.exchange("tus PATCH of the wrong type", "PATCH", upload, "/files/{id}", {415},
                      {**tus, "Upload-Offset": "0", "Content-Type": "text/plain"}, b"tus!")
        self.exchange("tus PATCH at the wrong offset", "PATCH", upload, "/files/{id}", {409},
                      {**tus, **patch_type, "Upload-Offset": "3"}, b"tus!")
        self.exchange("tus PATCH with a wrong checksum", "PATCH", upload, "/files/{id}", {460},
                      {**tus, **patch_type, "Upload-Offset": "0",
                       "Upload-Checksum": "sha1 " + base64.b64encode(bytes(20)).decode()}, b"tus!")
        self.exchange("tus PATCH", "PATCH", upload, "/files/{id}", {204},
                      {**tus, **patch_type, "Upload-Offset": "0"}, b"tus!")
        self.exchange("tus task while receiving", "GET", "/tasks/" + upload.rsplit("/", 1)[1],
                      "/tasks/{id}", {200})
        self.exchange("tus termination", "DELETE", upload, "/files/{id}", {204}, tus)
        self.exchange("tus terminated", "HEAD", upload, "/files/{id}", {404}, tus)
        self.exchange("tus terminated", "PATCH", upload, "/files/{id}", {404},
                      {**tus, **patch_type, "Upload-Offset": "4"}, b"tus!")
        self.exchange("upload with a wrong digest", "POST", "/upload", "/upload", {400},
                      {"X-Container-Name": container, "X-File-Path": file_path,
                       "X-Host-Path": "ferry-openapi-digest.txt",
                       "Content-Digest": "sha-256=:" + base64.b64encode(bytes(32)).decode() + ":"},
                      b"not the digest\n")

    def check_console(self, container, file_path):
        """/stats, /deliveries, /ui/, and /events read while an upload goes through."""
        self.exchange("stats", "GET", "/stats", "/stats", {200})
        self.exchange("stats with a query", "GET", "/stats?x=1", "/stats", {400})
        self.exchange("pauses", "GET", "/deliveries", "/deliveries", {200})
        self.exchange("pause a container", "POST", "/deliveries/pause?container=" + container,
                      "/deliveries/pause", {200})
        self.exchange("pause with a bad name", "POST", "/deliveries/pause?container=-x",
                      "/deliveries/pause", {400})
        self.exchange("resume everything", "POST", "/deliveries/resume", "/deliveries/resume", {200})
        self.exchange("console", "GET", "/ui/", "/ui/", {200}, auth=False)

        # /events: the stream's events, each against TaskEvent, while an upload is delivered.
        events = []
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            stream = urllib.request.urlopen(
                urllib.request.Request(self.base_url + "/events", headers=headers), timeout=self.timeout)
        except OSError as error:
            self.report("GET /events", [f"no answer: {error}"])
            return
        problems = []
        with stream:
            if stream.status != 200 or not stream.headers.get("Content-Type", "").startswith(
                    "text/event-stream"):
                problems.append(f"status {stream.status}, Content-Type {stream.headers.get('Content-Type')}")
            stream.readline()  # retry:
            answer = self.exchange("upload heard on /events", "POST", "/upload", "/upload", {202}, {
                "X-Container-Name": container, "X-File-Path": file_path,
                "X-Host-Path": "ferry-openapi-events.txt"}, b"events\n")
            task = answer[2].get("id") if answer and isinstance(answer[2], dict) else None
            deadline = time.monotonic() + self.timeout
            schema = self.spec["components"]["schemas"]["TaskEvent"]
            while task and time.monotonic() < deadline:
                line = stream.readline().decode("utf-8", "replace")
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                if event.get("id") != task:
                    continue
                error = self.schema_error(schema, event)
                if error:
                    problems.append(f"event {event}: {error}")
                events.append(event["state"])
                if event["state"] in ("delivered", "failed"):
                    break
        if not events or events[0] != "queued" or events[-1] not in ("delivered", "failed"):
            problems.append(f"the upload's events were {events}")
        self.report("GET /events", problems, [" -> ".join(events)])

    def quiet_state(self, task_path):
        status, headers, raw = self.request("GET", task_path)
        try:
            return status, headers, json.loads(raw)
        except ValueError:
            return status, headers, raw

    def check_metric_names(self, raw):
        text = raw.decode("utf-8", "replace")
        names = set()
        for line in text.splitlines():
            if line.startswith("# TYPE ") or line.startswith("# HELP "):
                parts = line.split()
                if len(parts) > 2:
                    names.add(parts[2])
            elif line and not line.startswith("#"):
                names.add(line.split("{")[0].split()[0])
        description = self.spec["paths"]["/metrics"]["get"].get("description", "")
        documented = [word.strip("`,.") for word in description.split() if word.startswith("`ferry_")]
        missing = [name for name in documented
                   if not any(found == name or found.startswith(name + "_") for found in names)]
        # A warning, not a failure: a labelled metric may have no series (nor TYPE line) yet.
        if missing:
            print(f"warn metrics: documented names not exposed (yet): {', '.join(missing)}", flush=True)
        else:
            self.report("metrics: documented names exposed", [], [f"{len(documented)} names"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=DEFAULT_SPEC, help="the OpenAPI file (docs/openapi.yaml)")
    parser.add_argument("--base-url", help="a running Ferry, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", help="a bearer token, when Ferry runs with --tokens")
    parser.add_argument("--container", default="demo", help="X-Container-Name of the test upload")
    parser.add_argument("--file-path", default="/tmp/", help="X-File-Path of the test upload")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per request")
    args = parser.parse_args()

    shown = os.path.relpath(args.spec) if args.spec == DEFAULT_SPEC else args.spec
    try:
        with open(args.spec, encoding="utf-8") as stream:
            spec = yaml.safe_load(stream)
        validate_spec(spec)
    except Exception as error:  # YAML or OpenAPI: say which, and stop.
        print(f"FAIL spec {shown}: {type(error).__name__}: {error}")
        return 1
    print(f"ok   spec {shown} is valid OpenAPI {spec.get('openapi')}")
    if not args.base_url:
        return 0

    checker = Checker(spec, args.base_url, args.token, args.timeout)
    checker.run(args.container, args.file_path)
    if checker.failures:
        print(f"{checker.failures} check(s) failed")
        return 1
    print("every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
