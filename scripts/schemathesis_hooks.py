"""Schemathesis hooks for scripts/schemathesis.sh: the two rules of docs/openapi.yaml that
depend on more than one value, which OpenAPI 3.0 cannot state in a schema.

Both only touch requests schemathesis generated as valid ("positive"), so that
positive_data_acceptance judges what the spec promises; requests meant to be invalid are
sent as generated.

- `X-File-Path` ending in `/` takes its file name from `X-Host-Path`: without a usable base
  name there the upload is 400 `invalid_header`, as documented. Such a request gets one.
- `X-File-Path` and `X-Host-Path` are UTF-8 bytes (other bytes are `invalid_header`, as
  documented), but an HTTP client sends a header's characters as Latin-1: a generated
  `¥` would arrive as the single byte 0xA5. Such a value is sent as its UTF-8 bytes, the
  destination the spec means.
- Digest fields (`Content-Digest`, `Repr-Digest`, `Upload-Checksum`) hold the digest of the
  body, which no schema can relate to it: a generated one would be refused (400, 460) as
  documented. Valid requests are sent without them.
- tus's `Upload-Metadata` must name `container` and `path` in base64, and a creation has
  `Upload-Length` or `Upload-Defer-Length`, not both: a valid creation gets a valid pair.
- `GET /tasks?after=ID` must name one of the asker's tasks (a bulk delete forgets them all) (400 `bad_query` otherwise, never
  a restart at page 1): no schema can know which ids exist. An `after` that is not the id of
  a task this run has seen and not deleted is dropped.
"""

import base64
import re
import threading

import schemathesis
from schemathesis.transport.serialization import serialize_binary

HOST_PATH = "schemathesis-upload.bin"
TASK_ID = re.compile(r"^([a-z0-9][a-z0-9-]{0,31}-)?[0-9a-f]{32}$")

_lock = threading.Lock()
_tasks = set()


def _positive(case):
    return case.meta is not None and case.meta.generation.mode.is_positive


def _header(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return key, value
    return None, None


def _base_name(host_path):
    """Ferry's rule (DestinationPath.baseName): the last `/` or `\\` separated segment."""
    parts = [part for part in re.split(r"[/\\]", host_path) if part]
    if not parts:
        return None
    name = parts[-1]
    if name in (".", "..") or len(name.encode("utf-8", "surrogateescape")) > 255:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return None
    return name


@schemathesis.serializer("application/offset+octet-stream")
def offset_octet_stream(context, value):
    """tus bytes are sent as they are, as application/octet-stream is."""
    return serialize_binary(value)


DIGEST_FIELDS = ("Content-Digest", "Repr-Digest", "Upload-Checksum")
METADATA = ",".join(
    f"{key} {base64.b64encode(value.encode()).decode()}"
    for key, value in (("container", "schemathesis"), ("path", "/tmp/"), ("filename", "schemathesis-tus.bin")))


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    operation = (case.operation.method.upper(), case.operation.path)
    for name in DIGEST_FIELDS:
        key, _ = _header(case.headers, name)
        if key is not None:
            del case.headers[key]
    if operation == ("POST", "/files/"):
        key, _ = _header(case.headers, "Upload-Metadata")
        case.headers[key or "Upload-Metadata"] = METADATA
        length_key, _ = _header(case.headers, "Upload-Length")
        defer_key, _ = _header(case.headers, "Upload-Defer-Length")
        if length_key is not None and defer_key is not None:
            del case.headers[defer_key]
        elif length_key is None and defer_key is None:
            case.headers["Upload-Length"] = "0"
    if operation == ("POST", "/upload"):
        for name in ("X-File-Path", "X-Host-Path"):
            key, value = _header(case.headers, name)
            if isinstance(value, str) and not value.isascii():
                case.headers[key] = value.encode("utf-8", "surrogateescape").decode("latin-1")
        _, file_path = _header(case.headers, "X-File-Path")
        if isinstance(file_path, str) and file_path.endswith("/"):
            key, host_path = _header(case.headers, "X-Host-Path")
            if not isinstance(host_path, str) or _base_name(host_path) is None:
                case.headers[key or "X-Host-Path"] = HOST_PATH
    elif operation == ("GET", "/tasks"):
        after = (case.query or {}).get("after")
        if after is not None:
            with _lock:
                known = after in _tasks
            if not known:
                del case.query["after"]


@schemathesis.hook
def after_call(context, case, response):
    """Records the ids of tasks that exist, and forgets those deleted."""
    method = case.operation.method.upper()
    if method == "DELETE" and case.operation.path == "/tasks" and response.status_code == 200:
        # A bulk delete of dead letters: which ones is not said, so none is known any more.
        with _lock:
            _tasks.clear()
        return
    if method == "DELETE" and response.status_code == 204:
        with _lock:
            _tasks.discard((case.path_parameters or {}).get("id"))
        return
    if not 200 <= response.status_code < 300 or method == "HEAD":
        return
    try:
        body = response.json()
    except ValueError:
        return
    found = []
    if isinstance(body, dict):
        found.append(body.get("id"))
        found.extend(task.get("id") for task in body.get("tasks") or [] if isinstance(task, dict))
    with _lock:
        _tasks.update(value for value in found if isinstance(value, str) and TASK_ID.match(value))
