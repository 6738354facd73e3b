"""The clients against a real server: every path an action can take, retries, errors, receipts, outcomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from arbiter_client import ApiError, AsyncClient, Client, ReceiptInvalid
from arbiter_client.receipts import args_digest, canonical_json, verify

from conftest import answer_soon


def test_allow_and_deny_are_final_at_once(server, agent_key):
    with Client(server.url, agent_key) as c:
        d = c.decide("close_alert", {"alert_id": "A-1", "resolution": "benign"}, confidence=0.97)
        assert d.allowed and d.final.source == "policy"
        assert d.action_to_run.args == {"alert_id": "A-1", "resolution": "benign"}
        denied = c.decide("wipe_disk", {"host": "web-1"}, confidence=0.99)
        assert not denied.allowed
        assert denied.final.verdict == "deny"
        assert denied.reason == "Wiping disks is never done by an agent."


def test_a_client_acts_in_its_keys_project_or_the_one_it_names(server, agent_key):
    # an agent key acts only in its own project: naming another is refused, an unknown one too
    with Client(server.url, agent_key, project="default") as c:
        assert c.decide("close_alert", {"alert_id": "A-7", "resolution": "benign"}, confidence=0.97).allowed
    with Client(server.url, agent_key, project="support") as c:
        with pytest.raises(ApiError) as e:
            c.propose("close_alert", {"alert_id": "A-8"}, confidence=0.97)
        assert e.value.status == 403 and "belongs to project `default`" in e.value.problem.detail
    # a server admin names any project; a project that does not exist is a 404
    with Client(server.url, server.admin, project="nope") as c:
        with pytest.raises(ApiError) as e:
            c.propose("close_alert", {"alert_id": "A-9"}, confidence=0.97)
        assert e.value.status == 404 and "no project `nope`" in e.value.problem.detail


def test_escalate_then_approve_and_modify(server, agent_key, reviewer):
    with Client(server.url, agent_key) as c:
        d = c.propose("isolate_host", {"host": "srv-db-01", "mode": "full"}, confidence=0.8)
        assert d.verdict == "escalate" and not d.is_final and d.case_id
        assert d.escalation.reviewers == ["soc_analyst"]
        answer_soon(server, reviewer, lambda case: case["decision_id"] == d.id, "modify",
                    "network isolation only, keep replication", {"host": "srv-db-01", "mode": "network_only"})
        final = c.wait(d, poll=1)  # several short polls, as a long SLA would need
        assert final.allowed and final.final.source == "review"
        assert final.final.decided_by == ["ana"]
        assert final.action_to_run.args == {"host": "srv-db-01", "mode": "network_only"}
        d2 = c.propose("isolate_host", {"host": "ws-7"}, confidence=0.8)
        server.answer(reviewer, d2.id, "approve", "confirmed malware on this workstation")
        assert c.wait(d2).action_to_run.args == {"host": "ws-7"}


def test_sla_fallback_decides_when_nobody_answers(server, agent_key):
    with Client(server.url, agent_key) as c:
        d = c.decide("slow_review", {"x": 1}, timeout=60)
        assert not d.allowed
        assert d.final.source == "sla_expired"


def test_wait_timeout_is_an_error_not_a_verdict(server, agent_key):
    with Client(server.url, agent_key) as c:
        d = c.propose("isolate_host", {"host": "h"}, confidence=0.5)
        with pytest.raises(TimeoutError):
            c.wait(d, timeout=1)


def test_a_retry_after_a_crash_finds_the_same_decision(server, agent_key, reviewer, tmp_path):
    # A process proposes with its own idempotency key and dies while it waits.
    script = textwrap.dedent(f"""
        import sys
        from arbiter_client import Client
        c = Client({server.url!r}, {agent_key!r})
        d = c.propose("isolate_host", {{"host": "web-17"}}, confidence=0.7, idempotency_key="ticket-4711:isolate")
        print(d.id, flush=True)
        c.wait(d)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    first = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    # Restarted, the agent asks again with the same key: the same decision, one case.
    with Client(server.url, agent_key) as c:
        again = c.propose("isolate_host", {"host": "web-17"}, confidence=0.7, idempotency_key="ticket-4711:isolate")
        assert again.id == first
        assert len([case for case in server.open_cases(reviewer) if case["action_name"] == "isolate_host"]) == 1
        server.answer(reviewer, first, "approve", "the alert is confirmed")
        assert c.wait(again).allowed


def test_errors_carry_the_problem(server, agent_key):
    with pytest.raises(ApiError) as e:
        Client(server.url, "arb_000000000000_nope").propose("close_alert", {}, confidence=0.9)
    assert e.value.status == 401 and e.value.code == "unauthorized" and e.value.detail
    with Client(server.url, agent_key) as c:
        with pytest.raises(ApiError) as e:
            c.propose("close_alert", {}, confidence=1.5)
        assert e.value.code == "invalid_request" and e.value.field == "action.confidence"
        with pytest.raises(ApiError) as e:
            c.get("01a00000-0000-7000-8000-000000000000")
        assert e.value.status == 404


def test_receipts_verify_and_refuse_other_arguments(server, agent_key):
    with Client(server.url, agent_key) as c:
        d = c.decide("close_alert", {"alert_id": "A-2", "score": 0.5}, confidence=0.95)
        keys = c.receipt_keys()
        r = c.verify_receipt(d, args={"score": 0.5, "alert_id": "A-2"})  # key order does not matter
        assert r.decision_id == d.id and r.args_digest == args_digest({"alert_id": "A-2", "score": 0.5})
        with pytest.raises(ReceiptInvalid) as e:
            verify(d, keys, args={"alert_id": "A-3", "score": 0.5})
        assert e.value.kind == "args_mismatch"
        forged = d.final.receipt.model_copy(update={"expires_at": "2099-01-01T00:00:00.000Z"})
        with pytest.raises(ReceiptInvalid) as e:
            verify(forged, keys)
        assert e.value.kind == "bad_signature"
        denied = c.decide("wipe_disk", {"host": "x"})
        with pytest.raises(ReceiptInvalid) as e:
            verify(denied, keys)
        assert e.value.kind == "not_allowed"
        assert verify(denied, keys, allow_only=False).verdict == "deny"


def test_canonical_json_matches_the_server(server, agent_key):
    # The server's digest of arguments with floats, unicode and nesting equals ours.
    args = {"b": [1, 2.5, 1e21, 1e-7, None, True], "a": "é\n\u0001", "€": {"z": 0.1, "y": -0.0}}
    with Client(server.url, agent_key) as c:
        d = c.decide("close_alert", args, confidence=0.99)
        assert d.final.receipt.args_digest == args_digest(args)
    assert canonical_json({"b": 1, "a": [1.0, 100.0]}) == '{"a":[1,100],"b":1}'


def test_outcomes_and_results_are_recorded(server, agent_key):
    with Client(server.url, agent_key) as c:
        d = c.decide("close_alert", {"alert_id": "A-9"}, confidence=0.95)
        c.record_result(d, {"closed": True})
        after = c.record_outcome(d, correct=False, label="false_negative", note="the alert was real")
        assert after.outcome.correct is False and after.outcome.label == "false_negative"
        assert c.get(d).tool_result.content == {"closed": True}


async def test_the_async_client_does_the_same(server, agent_key, reviewer):
    async with AsyncClient(server.url, agent_key) as c:
        d = await c.propose("isolate_host", {"host": "ws-9"}, confidence=0.6)
        answer_soon(server, reviewer, lambda case: case["decision_id"] == d.id, "reject", "not enough evidence yet")
        final = await c.wait(d, poll=1)
        assert not final.allowed and final.final.source == "review"
        assert "not enough evidence yet" in final.reason
        allowed = await c.decide("lookup_ip", {"ip": "10.0.0.1"}, confidence=0.9)
        r = await c.verify_receipt(allowed, args={"ip": "10.0.0.1"})
        assert r.verdict == "allow"
        assert json.loads(canonical_json(r.model_dump()))["decision_id"] == allowed.id


def test_transport_errors_are_retried_then_reported():
    from arbiter_client import TransportError

    c = Client("http://127.0.0.1:9", "arb_x", retries=2, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(TransportError):
        c.propose("close_alert", {}, confidence=0.9)
    assert time.monotonic() - started < 10
