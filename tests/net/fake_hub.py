"""A stand-in for the Hugging Face hub on 127.0.0.1, for the tests and bench/download_bench.py.

Python's own http.server (ThreadingHTTPServer, in a thread) answers the hub's API and file
addresses as the hub lays them out:
  GET /api/{models|datasets}/ORG/NAME/revision/REV          {"id", "sha"}
  GET /api/{models|datasets}/ORG/NAME/tree/REV[/FOLDER]?recursive=true[&cursor=K]
      a list of {"type": "file"|"directory", "path", "size", "oid"[, "lfs": {"oid", "size",
      "pointerSize"}]}, `page_size` entries per page, the next page in a Link header
  GET /datasets/ORG/NAME/resolve/REV/PATH, /ORG/NAME/resolve/REV/PATH
      the file; LFS files by a 302 to /cdn/SHA256 as the hub redirects to its storage; Range
      requests answered with 206 and Content-Range
The digests are computed here with hashlib (sha256 for LFS files, the git blob id for the
others), not by finegpt. Faults are queued per file path and used one per request: "drop" (all
headers, half the body, then the connection closes), "429", "503", "500". `listed` overrides
what the API says about a file (its size or sha256). Every request is logged with its headers.
"""
import hashlib
import http.server
import json
import os
import re
import sys
import threading
import urllib.parse


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, kind, name, files, lfs=(), sha=None, private=False):
        self.kind, self.name, self.files = kind, name, dict(files)
        self.lfs = set(lfs)  # paths stored in LFS (served through the /cdn redirect)
        self.sha = sha or hashlib.sha1(name.encode()).hexdigest()
        self.private = private  # answers 401 without the right token
        self.sha256 = {p: hashlib.sha256(d).hexdigest() for p, d in self.files.items()}
        self.git_id = {p: git_blob_id(d) for p, d in self.files.items()}


class FakeHub:
    def __init__(self, token=None, page_size=2):
        self.repos = {}
        self.faults = {}  # path -> list of faults, one used per request of that file
        self.listed = {}  # path -> {"size": N} or {"sha256": "..."}: what the API claims
        self.log = []  # (path and query, {header: value}) of every request
        self.token, self.page_size = token, page_size
        self.on_file_request = None  # called with (repo, path) before a file is served
        self.lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with hub.lock:
                    hub.log.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                try:
                    hub._answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A client that hangs up (finegpt stopping a transfer) is not an error here.
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def add(self, repo):
        self.repos[(repo.kind, repo.name)] = repo
        return repo

    def requests_for(self, path_suffix):
        return [(p, h) for p, h in self.log if urllib.parse.urlsplit(p).path.endswith(path_suffix)]

    # -- answers ---------------------------------------------------------------------------
    def _send(self, h, status, body=b"", headers=()):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _json(self, h, status, obj, headers=()):
        self._send(h, status, json.dumps(obj).encode(),
                   [("Content-Type", "application/json"), *headers])

    def _authorized(self, h, repo):
        return not repo.private or h.headers.get("Authorization") == f"Bearer {self.token}"

    def _entry(self, repo, path):
        data = repo.files[path]
        e = {"type": "file", "path": path, "size": len(data), "oid": repo.git_id[path]}
        if path in repo.lfs:
            e["lfs"] = {"oid": repo.sha256[path], "size": len(data),
                        "pointerSize": 134}
        claimed = self.listed.get(path, {})
        if "size" in claimed:
            e["size"] = claimed["size"]
            if "lfs" in e:
                e["lfs"]["size"] = claimed["size"]
        if "sha256" in claimed:
            e["lfs"]["oid"] = claimed["sha256"]
        return e

    def _answer(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        path = urllib.parse.unquote(url.path)
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/(revision|tree)/([^/]+)(/.*)?", path)
        if m:
            kind = "model" if m.group(1) == "models" else "dataset"
            repo = self.repos.get((kind, m.group(2)))
            if repo is None or not self._authorized(h, repo):
                return self._json(h, 401 if repo is None or repo.private else 404,
                                  {"error": "Repository not found"})
            if m.group(4) not in ("main", repo.sha):
                return self._json(h, 404, {"error": "Revision not found"})
            if m.group(3) == "revision":
                return self._json(h, 200, {"id": repo.name, "sha": repo.sha})
            folder = (m.group(5) or "/").strip("/")
            prefix = folder + "/" if folder else ""
            names = sorted(p for p in repo.files if p.startswith(prefix))
            if folder and not names:
                return self._json(h, 404, {"error": "Entry not found"})
            dirs = sorted({p[:i] for p in names for i in range(len(p)) if p[i] == "/"
                           and p[:i].startswith(prefix) and len(p[:i]) > len(prefix) - 1})
            entries = [{"type": "directory", "path": d, "size": 0, "oid": "0" * 40}
                       for d in dirs] + [self._entry(repo, p) for p in names]
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start:start + self.page_size]
            headers = []
            if start + self.page_size < len(entries):
                nxt = f"{self.endpoint}{url.path}?recursive=true&cursor={start + self.page_size}"
                headers.append(("Link", f'<{nxt}>; rel="next"'))
            return self._json(h, 200, page, headers)
        m = re.fullmatch(r"/cdn/([0-9a-f]{64})", path)
        if m:
            for repo in self.repos.values():
                for p, digest in repo.sha256.items():
                    if digest == m.group(1):
                        return self._file(h, p, repo.files[p])
            return self._send(h, 404, b"no such object")
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            repo = self.repos.get(("dataset" if m.group(1) else "model", m.group(2)))
            if repo is None or not self._authorized(h, repo):
                return self._send(h, 401, b"Repository not found")
            p = m.group(4)
            if m.group(3) not in ("main", repo.sha) or p not in repo.files:
                return self._send(h, 404, b"Entry not found")
            if self.on_file_request:
                self.on_file_request(repo, p)
            if p in repo.lfs:
                target = f"{self.endpoint}/cdn/{repo.sha256[p]}"
                return self._send(h, 302, b"", [("Location", target)])
            return self._file(h, p, repo.files[p])
        return self._send(h, 404, b"not a hub address")

    def _file(self, h, path, data):
        with self.lock:
            queue = self.faults.get(path, [])
            fault = queue.pop(0) if queue else None
        if fault in ("429", "503", "500"):
            return self._send(h, int(fault), b"try later")
        start = 0
        rng = h.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1))
            if start >= len(data):
                return self._send(h, 416, b"", [("Content-Range", f"bytes */{len(data)}")])
        view = memoryview(data)[start:]
        h.send_response(206 if rng else 200)
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(view)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if fault == "drop":
            h.wfile.write(view[:len(view) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        for k in range(0, len(view), 1 << 20):
            h.wfile.write(view[k:k + (1 << 20)])
