"""A real `arbiter serve` per test: the built binary, a free port, a fresh store.

The binary is $ARBITER_BIN, else the workspace's target/debug/arbiter (build it
with `cargo build -p arbiter-cli`). Reviewers answer over the real HTTP API.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import pytest

# The OpenAI Agents SDK would try to export its traces to OpenAI; the tests are offline.
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

REPO = Path(__file__).resolve().parents[3]
POLICY = Path(__file__).with_name("policy.yaml")


def arbiter_bin() -> str:
    explicit = os.environ.get("ARBITER_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = REPO / "target" / profile / "arbiter"
        if candidate.exists():
            return str(candidate)
    pytest.fail("no arbiter binary: run `cargo build -p arbiter-cli` or set ARBITER_BIN")


class Server:
    def __init__(self, tmp: Path, extra: tuple[str, ...] = (), policy: Path = POLICY) -> None:
        self.bin = arbiter_bin()
        self.db = tmp / "arbiter.db"
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--listen", "127.0.0.1:0", "--db", str(self.db), "--policy", str(policy), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
        self.url = ""
        self.admin = ""
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("listening on "):
                self.url = line.split()[-1]
            elif line.startswith("admin key: "):
                self.admin = line.split()[-1]
            elif line == "ready":
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.proc.kill()
            pytest.fail("arbiter serve did not start")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def key(self, name: str, role: str, tags: tuple[str, ...] = ()) -> str:
        r = self.http.post("/v1/keys", json={"name": name, "role": role, "tags": list(tags), "rate_limit": "unlimited"},
                           headers={"Authorization": f"Bearer {self.admin}"})
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def case_of(self, decision_id: str, timeout: float = 30) -> str:
        """The case id of an escalated decision (waiting until it exists)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = self.http.get(f"/v1/decisions/{decision_id}", headers={"Authorization": f"Bearer {self.admin}"}).json()
            if d.get("case_id"):
                return d["case_id"]
            time.sleep(0.05)
        raise AssertionError(f"decision {decision_id} has no case")

    def answer(self, reviewer: str, decision_id: str, decision: str, rationale: str,
               args: Optional[dict[str, Any]] = None) -> None:
        body: dict[str, Any] = {"decision": decision, "rationale": rationale}
        if args is not None:
            body["args"] = args
        r = self.http.post(f"/v1/cases/{self.case_of(decision_id)}/decision", json=body,
                           headers={"Authorization": f"Bearer {reviewer}"})
        assert r.status_code == 200, r.text

    def open_cases(self, reviewer: str) -> list[dict[str, Any]]:
        r = self.http.get("/v1/queue", headers={"Authorization": f"Bearer {reviewer}"})
        assert r.status_code == 200, r.text
        return [i["case"] for i in r.json()["items"]]

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def soc_server(tmp_path: Path) -> Iterator[Server]:
    """A server with the SOC example policy, as the examples expect."""
    s = Server(tmp_path, policy=REPO / "examples" / "policies" / "soc.yaml")
    yield s
    s.stop()


@pytest.fixture
def agent_key(server: Server) -> str:
    return server.key("soc-agent", "agent")


@pytest.fixture
def reviewer(server: Server) -> str:
    return server.key("ana", "reviewer", ("soc_analyst",))


def answer_soon(server: Server, reviewer: str, find_decision, decision: str, rationale: str,
                args: Optional[dict[str, Any]] = None):
    """Answer, from another thread, the first case the queue shows (for code that blocks while waiting)."""
    import threading

    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cases = server.open_cases(reviewer)
            match = [c for c in cases if find_decision(c)]
            if match:
                server.answer(reviewer, match[0]["decision_id"], decision, rationale, args)
                return
            time.sleep(0.05)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
