"""`guard` around plain and async functions: allow runs, deny raises, escalate waits and runs the reviewer's version."""

from __future__ import annotations

import pytest

from arbiter_client import AsyncClient, Client, Denied, guard, guarded

from conftest import answer_soon


def test_a_guarded_function_runs_only_as_allowed(server, agent_key, reviewer):
    ran: list[dict] = []
    c = Client(server.url, agent_key)

    @guard(action="close_alert", client=c, confidence=lambda args: args["confidence"])
    def close_alert(alert_id: str, confidence: float, resolution: str = "benign") -> str:
        ran.append({"alert_id": alert_id, "resolution": resolution})
        return f"closed {alert_id}"

    assert close_alert("A-1", 0.97) == "closed A-1"
    assert ran == [{"alert_id": "A-1", "resolution": "benign"}]

    def wipe_disk(host: str) -> None:
        ran.append({"wiped": host})

    with pytest.raises(Denied) as e:
        guarded(wipe_disk, client=c)(host="web-1")
    assert "Wiping disks is never done by an agent." in str(e.value)
    assert e.value.decision.final.source == "policy"
    assert {"wiped": "web-1"} not in ran

    isolated: list[tuple[str, str]] = []

    @guard(client=c, confidence=0.8)
    def isolate_host(host: str, mode: str = "full") -> str:
        isolated.append((host, mode))
        return "isolated"

    answer_soon(server, reviewer, lambda case: case["action_name"] == "isolate_host", "modify",
                "network only for a database server", {"host": "srv-db-01", "mode": "network_only"})
    assert isolate_host("srv-db-01") == "isolated"
    assert isolated == [("srv-db-01", "network_only")], "the reviewer's arguments ran"
    assert not server.open_cases(reviewer), "the case was answered, nothing left open"


async def test_async_functions_are_guarded_too(server, agent_key, reviewer):
    c = AsyncClient(server.url, agent_key)
    calls: list[str] = []

    @guard(action="isolate_host", client=c, confidence=0.7)
    async def isolate(host: str) -> dict:
        calls.append(host)
        return {"isolated": host}

    answer_soon(server, reviewer, lambda case: case["action_name"] == "isolate_host", "reject",
                "that host is the domain controller")
    with pytest.raises(Denied) as e:
        await isolate("dc-01")
    assert e.value.decision.final.source == "review"
    assert "domain controller" in e.value.reason
    assert calls == []
    with pytest.raises(TypeError):
        guard(client=Client(server.url, agent_key))(isolate.__wrapped__)
    await c.aclose()


def test_results_are_kept_on_the_decision(server, agent_key):
    c = Client(server.url, agent_key)

    @guard(action="lookup_ip", client=c, confidence=0.9,
           idempotency_key=lambda args: f"lookup:{args['ip']}")
    def lookup_ip(ip: str) -> dict:
        return {"ip": ip, "reputation": "clean"}

    assert lookup_ip("10.1.2.3") == {"ip": "10.1.2.3", "reputation": "clean"}
    d = c.propose("lookup_ip", {"ip": "10.1.2.3"}, confidence=0.9, idempotency_key="lookup:10.1.2.3")
    assert d.tool_result is not None and d.tool_result.content == {"ip": "10.1.2.3", "reputation": "clean"}


def test_without_a_client_the_environment_names_the_server(server, agent_key, monkeypatch):
    monkeypatch.setenv("ARBITER_URL", server.url)
    monkeypatch.setenv("ARBITER_KEY", agent_key)

    @guard(action="lookup_ip", confidence=0.9)
    def lookup_ip(ip: str) -> str:
        return f"looked up {ip}"

    assert lookup_ip("10.0.0.1") == "looked up 10.0.0.1"
    assert lookup_ip("10.0.0.2") == "looked up 10.0.0.2"
