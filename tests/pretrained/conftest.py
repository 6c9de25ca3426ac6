"""A local Hub: a real HTTP server answering the file-resolve endpoint the huggingface_hub client calls.

``HEAD|GET /{owner}/{repo}/resolve/{revision}/{filename}`` answers as the Hub does for an LFS file:
``X-Repo-Commit``, ``ETag``/``X-Linked-Etag`` (the sha256 of what it serves), ``X-Linked-Size`` and
``Content-Length``; an unknown repo, revision or file gets 404 with the Hub's ``X-Error-Code``.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

from bsrn_cli.pretrained import registry
from bsrn_cli.pretrained.registry import PretrainedModel


@dataclass
class FakeHub:
    url: str = ""
    # repo -> revision -> filename -> bytes
    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def add(self, repo: str, revision: str, filename: str, data: bytes) -> None:
        self.repos.setdefault(repo, {}).setdefault(revision, {})[filename] = data

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _commit_of(revision: str) -> str:
    return hashlib.sha1(revision.encode()).hexdigest()


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _not_found(self, code: str, commit: str | None = None) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", f"{code} (local test Hub)")
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            parts = self.path.split("/", 5)  # '', owner, repo, 'resolve', revision, filename
            if len(parts) != 6 or parts[3] != "resolve":
                return self._not_found("RepoNotFound")
            repo, revision, filename = f"{parts[1]}/{parts[2]}", unquote(parts[4]), unquote(parts[5])
            if repo not in hub.repos:
                return self._not_found("RepoNotFound")
            if revision not in hub.repos[repo]:
                return self._not_found("RevisionNotFound")
            files = hub.repos[repo][revision]
            if filename not in files:
                return self._not_found("EntryNotFound", _commit_of(revision))
            data = files[filename]
            digest = hashlib.sha256(data).hexdigest()
            self.send_response(200)
            self.send_header("X-Repo-Commit", _commit_of(revision))
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def do_HEAD(self):
            self._answer(with_body=False)

        def do_GET(self):
            self._answer(with_body=True)

    return Handler


def free_port_url() -> str:
    """The URL of a port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def hub_env(monkeypatch, tmp_path, endpoint: str) -> None:
    """Point this process's huggingface_hub at ``endpoint``; cache and HF_HOME in tmp; online."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("BSRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)
    # constants were read at import time; the client's offline guard looks at this one.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.server = server
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub_env(monkeypatch, tmp_path, hub.url)
    yield hub
    hub.stop()


@pytest.fixture
def temporary_entry():
    """Register entries for one test (e.g. a model with no bundled file); removed afterwards."""
    added: list[str] = []

    def register(**fields) -> PretrainedModel:
        defaults = dict(description="test model", hub_repo="bsrn-test/tiny", revision="v0.0.1", licence="mit",
                        architecture="bsrn", config_summary="tiny", bundled=False)
        entry = registry.register_model(PretrainedModel(**{**defaults, **fields}))
        added.append(entry.name)
        return entry

    yield register
    for name in added:
        registry.unregister_model(name)
