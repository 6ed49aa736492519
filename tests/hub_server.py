"""A loopback server speaking the part of the Hugging Face Hub HTTP API that `huggingface_hub`
(publishing) and `datasets.load_dataset` (reading) use for a dataset repository:

    POST /api/repos/create                          create a repo (409 if it exists)
    POST /api/validate-yaml                         the card's YAML header
    GET  /api/datasets/{repo}[/revision/{rev}]      repo info (sha, siblings)
    GET  /api/datasets/{repo}/refs                  branches and tags
    POST /api/datasets/{repo}/preupload/{rev}       upload mode per file (always "regular")
    POST /api/datasets/{repo}/commit/{rev}          NDJSON commit (base64 files, deletions)
    POST /api/datasets/{repo}/tag/{rev}             create a tag
    GET  /api/datasets/{repo}/tree/{rev}[/{path}]   list files
    POST /api/datasets/{repo}/paths-info/{rev}      info for given paths
    HEAD|GET /datasets/{repo}/resolve/{rev}/{path}  file download (with Range)

`faults` makes it fail the way a real network does: per action (`create`, `preupload`,
`commit`, `tag`, ...), a queue of what the next requests get: "500", "drop" (the connection
closes with no answer), "drop-after" (the request is carried out, then the answer is lost)
or "slow" (answered after SLOW_S seconds).

Files travel inline ("regular" upload mode): the real Hub stores large files through Xet,
a protocol this server does not speak. Writes need `Authorization: Bearer <token>`. Every
request is recorded (method, path, whether it was authorised) so tests can check which
calls the real client made, and that the token was sent only where it belongs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

API = re.compile(
    r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/(?P<action>[a-z-]+)(?:/(?P<rest>.*))?)?$"
)
RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SLOW_S = 1.5


def blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> files
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    private: bool = False

    def commit(self, files: dict[str, bytes], parent: str | None, message: str) -> str:
        digest = hashlib.sha1(f"{parent}\n{message}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{blob_oid(files[path])}\n".encode())
        sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        return sha

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.commits:
            return revision
        return self.branches.get(revision) or self.tags.get(revision)


class FakeHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.faults: dict[str, list[str]] = {}  # action -> what its next requests get

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: tests read `server.requests` instead
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def _authorised(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.token}"

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has the headers of a GET and no body
            self.wfile.write(body)

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _action(self, path: str) -> str | None:
        if path == "/api/repos/create":
            return "create"
        match = API.match(path)
        return match["action"] if match else None

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        with self.server.lock:
            self.server.requests.append((method, url.path, self._authorised()))
            queue = self.server.faults.get(self._action(url.path) or "", [])
            fault = queue.pop(0) if queue and method == "POST" else None
        if fault == "500":
            self._body()
            return self._error(500, "injected failure")
        if fault == "drop":
            self._body()
            return self._drop()
        if fault == "slow":
            time.sleep(SLOW_S)
        answer = self.wfile
        if fault == "drop-after":
            self.wfile = io.BytesIO()  # carried out; the answer goes nowhere
        try:
            self._dispatch(method, url.path, parse_qs(url.query))
        except Exception as error:  # a server bug: show it to the client, do not hang
            self._error(500, f"{type(error).__name__}: {error}")
        if fault == "drop-after":
            self.wfile = answer
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self):
        self._route("GET")

    def do_HEAD(self):
        self._route("HEAD")

    def do_POST(self):
        self._route("POST")

    # -- routes -----------------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, query: dict) -> None:
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo()
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml()
        if match := RESOLVE.match(path):
            return self._resolve(match["repo"], match["rev"], unquote(match["path"]))
        match = API.match(path)
        if not match:
            return self._error(404, f"no route for {method} {path}")
        repo_id, action, rest = match["repo"], match["action"], match["rest"] or ""
        repo = self.server.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        if action in (None, "revision") and method == "GET":
            return self._info(repo_id, repo, rest or "main")
        if action == "refs" and method == "GET":
            return self._refs(repo)
        if action == "tree" and method == "GET":
            revision, _, folder = rest.partition("/")
            return self._tree(repo, revision, unquote(folder), "true" in query.get("recursive", []))
        if action == "paths-info" and method == "POST":
            return self._paths_info(repo, rest)
        if method == "POST" and not self._authorised():
            return self._error(401, "Invalid credentials in Authorization header")
        if action == "preupload" and method == "POST":
            return self._preupload(repo, rest)
        if action == "commit" and method == "POST":
            return self._commit(repo_id, repo, unquote(rest))
        if action == "tag" and method == "POST":
            return self._tag(repo, rest)
        return self._error(404, f"no route for {method} {path}")

    def _create_repo(self) -> None:
        if not self._authorised():
            return self._error(401, "Invalid credentials in Authorization header")
        payload = json.loads(self._body())
        if payload.get("type") != "dataset":
            return self._error(400, "this server holds dataset repos only")
        repo_id = f"{payload['organization']}/{payload['name']}"
        with self.server.lock:
            url = f"{self.server.endpoint}/datasets/{repo_id}"
            if repo_id in self.server.repos:  # the Hub's 409 carries the url: clients read it
                return self._json(409, {"error": "You already created this repo", "url": url})
            # huggingface_hub 2 sends `visibility`; older clients `private`
            private = payload.get("visibility") == "private" or payload.get("private") is True
            repo = Repo(private=private)
            # As the Hub does: a new repo starts with one commit holding .gitattributes.
            sha = repo.commit({".gitattributes": b"*.parquet filter=lfs\n"}, None, "initial commit")
            repo.branches["main"] = sha
            self.server.repos[repo_id] = repo
        self._json(200, {"url": url, "name": repo_id})

    def _validate_yaml(self) -> None:
        content = json.loads(self._body())["content"]
        header = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        try:
            metadata = yaml.safe_load(header.group(1)) if header else {}
        except yaml.YAMLError as error:
            return self._json(400, {"errors": [{"message": str(error)}]})
        if not isinstance(metadata, dict):
            return self._json(400, {"errors": [{"message": "metadata must be a mapping"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _info(self, repo_id: str, repo: Repo, revision: str) -> None:
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = repo.commits[sha]
        self._json(
            200,
            {
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": sha,
                "private": repo.private,
                "siblings": [{"rfilename": p} for p in sorted(files)],
            },
        )

    def _refs(self, repo: Repo) -> None:
        def refs(kind: str, names: dict) -> list[dict]:
            return [
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha}
                for n, sha in sorted(names.items())
            ]

        branches, tags = refs("heads", repo.branches), refs("tags", repo.tags)
        self._json(200, {"branches": branches, "tags": tags, "converts": []})

    @staticmethod
    def _entries(files: dict[str, bytes], paths) -> list[dict]:
        entries = []
        for path in paths:
            if path in files:
                content = files[path]
                entries.append(
                    {"type": "file", "path": path, "size": len(content), "oid": blob_oid(content)}
                )
            else:
                entries.append({"type": "directory", "path": path, "size": 0, "oid": "0" * 40})
        return entries

    def _tree(self, repo: Repo, revision: str, folder: str, recursive: bool) -> None:
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = repo.commits[sha]
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        inside = [p for p in files if p.startswith(prefix)]
        if prefix and not inside:
            return self._error(404, f"{folder} does not exist", "EntryNotFound")
        listed: set[str] = set()
        for path in inside:
            parts = path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for n in range(1, min(depth, len(parts)) + 1):
                listed.add(prefix + "/".join(parts[:n]))
        self._json(200, self._entries(files, sorted(listed)))

    def _paths_info(self, repo: Repo, revision: str) -> None:
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        files = repo.commits[sha]
        form = parse_qs(self._body().decode())
        folders = {"/".join(p.split("/")[:n]) for p in files for n in range(1, p.count("/") + 1)}
        wanted = [p.strip("/") for p in form.get("paths", [])]
        self._json(200, self._entries(files, [p for p in wanted if p in files or p in folders]))

    def _preupload(self, repo: Repo, revision: str) -> None:
        files = repo.commits.get(repo.resolve(revision) or "", {})
        payload = json.loads(self._body())
        modes = []
        for item in payload["files"]:
            existing = files.get(item["path"])
            oid = blob_oid(existing) if existing is not None else None
            modes.append(
                {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid}
            )
        self._json(200, {"files": modes})

    def _commit(self, repo_id: str, repo: Repo, branch: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with self.server.lock:
            head = repo.branches.get(branch)
            if head is None:
                return self._error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            header = lines[0]["value"]
            if header.get("parentCommit") not in (None, head):
                return self._error(412, "A commit has happened since. Refresh and try again.")
            files = dict(repo.commits[head])
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: c for p, c in files.items() if not p.startswith(prefix)}
                else:
                    return self._error(400, f"this server does not take {key!r} operations")
            sha = repo.commit(files, head, header["summary"])
            repo.branches[branch] = sha
        url = f"{self.server.endpoint}/datasets/{repo_id}/commit/{sha}"
        self._json(200, {"success": True, "commitUrl": url, "commitOid": sha})

    def _tag(self, repo: Repo, revision: str) -> None:
        payload = json.loads(self._body())
        with self.server.lock:
            sha = repo.resolve(revision)
            if sha is None:
                return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            if payload["tag"] in repo.tags:
                return self._error(409, f"Tag {payload['tag']} already exists")
            repo.tags[payload["tag"]] = sha
        self._json(200, {})

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo = self.server.repos.get(repo_id)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        content = repo.commits[sha].get(path)
        if content is None:
            return self._error(404, f"{path} does not exist at {revision}", "EntryNotFound")
        headers = {
            "ETag": f'"{blob_oid(content)}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status, body = 200, content
        if (wanted := RANGE.match(self.headers.get("Range", ""))) and content:
            first, last = wanted.groups()
            end = len(content) - 1
            if first:
                start, end = int(first), min(int(last), end) if last else end
            else:  # a suffix: the last N bytes
                start = max(0, len(content) - int(last))
            status, body = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        self._send(status, body, headers)
