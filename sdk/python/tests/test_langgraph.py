"""LangGraph with the real library and LangChain's own fake chat model: parallel tool calls in
blocking mode, and interrupt mode resumed by a new process from a SQLite checkpointer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command

from arbiter_client import Client
from arbiter_client.integrations.langgraph import ArbiterToolNode, pending_decisions, resume_command

from conftest import answer_soon

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "python" / "langgraph_soc.py"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def graph_with(node: ArbiterToolNode, script: list[AIMessage], checkpointer=None):
    llm = GenericFakeChatModel(messages=iter(script))
    g = StateGraph(State)
    g.add_node("agent", lambda state: {"messages": [llm.invoke(state["messages"])]})
    g.add_node("tools", node)
    g.add_edge(START, "agent")
    g.add_conditional_edges(
        "agent", lambda s: "tools" if isinstance(s["messages"][-1], AIMessage) and s["messages"][-1].tool_calls else END,
        ["tools", END])
    g.add_edge("tools", "agent")
    return g.compile(checkpointer=checkpointer)


ran: list[tuple] = []


@tool
def isolate_host(host: str, mode: str = "full") -> str:
    """Isolate a host."""
    ran.append(("isolate_host", host, mode))
    return f"{host} isolated ({mode})"


@tool
def close_alert(alert_id: str, resolution: str) -> str:
    """Close an alert."""
    ran.append(("close_alert", alert_id, resolution))
    return f"{alert_id} closed"


@tool
def wipe_disk(host: str) -> str:
    """Wipe a disk."""
    ran.append(("wipe_disk", host))
    return "wiped"


CALLS = AIMessage(content="", tool_calls=[
    {"name": "isolate_host", "args": {"host": "srv-db-01"}, "id": "c1"},
    {"name": "close_alert", "args": {"alert_id": "A-1", "resolution": "benign"}, "id": "c2"},
    {"name": "wipe_disk", "args": {"host": "srv-db-01"}, "id": "c3"},
])
CONFIDENCE = {"isolate_host": 0.8, "close_alert": 0.97, "wipe_disk": 0.99}


def test_parallel_tool_calls_in_blocking_mode(server, agent_key, reviewer):
    ran.clear()
    arbiter = Client(server.url, agent_key)
    node = ArbiterToolNode([isolate_host, close_alert, wipe_disk], arbiter,
                           confidence=lambda call, state: CONFIDENCE[call["name"]])
    graph = graph_with(node, [CALLS, AIMessage(content="done")], InMemorySaver())
    answer_soon(server, reviewer, lambda case: case["action_name"] == "isolate_host", "modify",
                "network isolation keeps the database replicating", {"host": "srv-db-01", "mode": "network_only"})
    out = graph.invoke({"messages": [HumanMessage("triage")]}, {"configurable": {"thread_id": "t-blocking"}})
    tool_messages = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert tool_messages["c1"].content == "srv-db-01 isolated (network_only)"
    assert tool_messages["c2"].content == "A-1 closed"
    assert tool_messages["c3"].status == "error"
    assert "Wiping disks is never done by an agent." in tool_messages["c3"].content
    assert sorted(ran) == [("close_alert", "A-1", "benign"), ("isolate_host", "srv-db-01", "network_only")]
    assert out["messages"][-1].content == "done"


def test_interrupt_mode_resumes_in_memory_with_each_call_its_own_decision(server, agent_key, reviewer):
    ran.clear()
    arbiter = Client(server.url, agent_key)
    node = ArbiterToolNode([isolate_host, close_alert], arbiter, mode="interrupt",
                           confidence=lambda call, state: 0.8)
    two_isolations = AIMessage(content="", tool_calls=[
        {"name": "isolate_host", "args": {"host": "ws-1"}, "id": "p1"},
        {"name": "isolate_host", "args": {"host": "ws-2"}, "id": "p2"},
    ])
    graph = graph_with(node, [two_isolations, AIMessage(content="done")], InMemorySaver())
    config = {"configurable": {"thread_id": "t-parallel"}}
    graph.invoke({"messages": [HumanMessage("two infected workstations")]}, config)
    pending = pending_decisions(graph, config)
    assert len(pending) == 2 and len(set(pending)) == 2, "each parallel call has its own decision"
    assert ran == []
    server.answer(reviewer, pending[0], "approve", "confirmed beacon")
    # resuming with one still open: the node asks again for the other, nothing runs twice
    graph.invoke(Command(resume=True), config)
    assert pending_decisions(graph, config) == [pending[1]]
    server.answer(reviewer, pending[1], "reject", "that one is a false positive")
    out = graph.invoke(resume_command(arbiter, graph, config), config)
    results = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert results["p1"].content == "ws-1 isolated (full)"
    assert results["p2"].status == "error" and "false positive" in results["p2"].content
    assert ran == [("isolate_host", "ws-1", "full")]
    assert not server.open_cases(reviewer)


def test_interrupt_and_resume_across_a_process_restart(server, agent_key, reviewer, tmp_path):
    env = {**os.environ, "ARBITER_URL": server.url, "ARBITER_KEY": agent_key,
           "SOC_ACTIONS_LOG": str(tmp_path / "actions.jsonl"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    run = lambda phase: subprocess.run(  # noqa: E731
        [sys.executable, str(EXAMPLE), phase, "--thread", "alert-4711", "--checkpoints", str(tmp_path / "cp.sqlite")],
        env=env, capture_output=True, text=True, timeout=120)
    first = run("start")
    assert first.returncode == 0, first.stderr
    state = json.loads(first.stdout.strip().splitlines()[-1])
    assert len(state["pending"]) == 1, state  # close_alert was allowed, isolate_host waits
    assert state["tool_messages"] == []
    assert not (tmp_path / "actions.jsonl").exists(), "nothing runs before the verdicts"
    # the first process is gone; an analyst narrows the isolation
    server.answer(reviewer, state["pending"][0], "modify", "network only: it is a database server",
                  {"host": "srv-db-01", "mode": "network_only"})
    second = run("resume")
    assert second.returncode == 0, second.stderr
    done = json.loads(second.stdout.strip().splitlines()[-1])
    assert done["pending"] == [] and done["last"] == "Triage done."
    actions = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert {"tool": "isolate_host", "host": "srv-db-01", "mode": "network_only"} in actions
    assert {"tool": "close_alert", "alert_id": "A-4711", "resolution": "duplicate"} in actions
    assert len(actions) == 2
    # the resumed process found the same decisions: one per tool call, no more
    admin = {"Authorization": f"Bearer {server.admin}"}
    decisions = server.http.get("/v1/decisions/" + state["pending"][0], headers=admin).json()
    assert decisions["final"]["source"] == "review"
    assert decisions["idempotency_key"] == "langgraph:alert-4711:call_isolate_1"


def test_a_webhook_resumes_the_graph(tmp_path):
    """Interrupt mode fed by a webhook: the `case.decided` delivery (signature checked) says which
    decision is final, and `Command(resume=True)` finishes the run without any polling."""
    import http.server
    import threading

    from arbiter_client.webhooks import BadSignature, verify as verify_webhook
    from conftest import Server

    received: list[tuple[str, bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Arbiter-Signature"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    server = Server(tmp_path, extra=("--webhook-allow-private",))
    try:
        admin = {"Authorization": f"Bearer {server.admin}"}
        r = server.http.post("/v1/webhooks", headers=admin, json={
            "url": f"http://127.0.0.1:{hook.server_address[1]}/hook", "events": ["case.decided"]})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        reviewer = server.key("ana", "reviewer", ("soc_analyst",))
        arbiter = Client(server.url, server.key("soc-agent", "agent"))
        ran.clear()
        node = ArbiterToolNode([isolate_host], arbiter, mode="interrupt", confidence=lambda call, state: 0.8)
        one = AIMessage(content="", tool_calls=[{"name": "isolate_host", "args": {"host": "ws-3"}, "id": "w1"}])
        graph = graph_with(node, [one, AIMessage(content="done")], InMemorySaver())
        config = {"configurable": {"thread_id": "t-webhook"}}
        graph.invoke({"messages": [HumanMessage("ws-3 beacons")]}, config)
        (pending,) = pending_decisions(graph, config)
        server.answer(reviewer, pending, "approve", "confirmed beacon")
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received, "no webhook delivery within 30 s"
        signature, body = received[0]
        event = verify_webhook(secret, signature, body)
        assert event["type"] == "case.decided" and event["event"]["decision_id"] == pending
        with pytest.raises(BadSignature):
            verify_webhook(secret, signature, body.replace(b"approve", b"APPROVE") + b" ")
        with pytest.raises(BadSignature):
            verify_webhook(secret, signature, body, now=time.time() + 3600)
        out = graph.invoke(Command(resume=True), config)
        assert ran == [("isolate_host", "ws-3", "full")]
        assert out["messages"][-1].content == "done"
    finally:
        server.stop()
        hook.shutdown()


async def test_the_async_node_in_an_async_graph(server, agent_key, reviewer):
    """`AsyncArbiterToolNode`: parallel calls proposed and awaited together, then interrupt mode."""
    from arbiter_client import AsyncClient
    from arbiter_client.integrations.langgraph import AsyncArbiterToolNode

    ran.clear()
    arbiter = AsyncClient(server.url, agent_key)
    node = AsyncArbiterToolNode([isolate_host, close_alert, wipe_disk], arbiter,
                                confidence=lambda call, state: CONFIDENCE[call["name"]])
    graph = graph_with(node, [CALLS, AIMessage(content="done")], InMemorySaver())
    answer_soon(server, reviewer, lambda case: case["action_name"] == "isolate_host", "modify",
                "network only", {"host": "srv-db-01", "mode": "network_only"})
    out = await graph.ainvoke({"messages": [HumanMessage("triage")]}, {"configurable": {"thread_id": "t-async"}})
    results = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert results["c1"].content == "srv-db-01 isolated (network_only)"
    assert results["c2"].content == "A-1 closed"
    assert results["c3"].status == "error" and "never done by an agent" in results["c3"].content
    assert sorted(ran) == [("close_alert", "A-1", "benign"), ("isolate_host", "srv-db-01", "network_only")]

    ran.clear()
    node = AsyncArbiterToolNode([isolate_host], arbiter, mode="interrupt", confidence=lambda call, state: 0.8)
    one = AIMessage(content="", tool_calls=[{"name": "isolate_host", "args": {"host": "ws-8"}, "id": "a1"}])
    graph = graph_with(node, [one, AIMessage(content="done")], InMemorySaver())
    config = {"configurable": {"thread_id": "t-async-interrupt"}}
    await graph.ainvoke({"messages": [HumanMessage("ws-8 beacons")]}, config)
    (pending,) = pending_decisions(graph, config)
    server.answer(reviewer, pending, "approve", "confirmed beacon on ws-8")
    out = await graph.ainvoke(Command(resume=True), config)
    assert ran == [("isolate_host", "ws-8", "full")]
    assert out["messages"][-1].content == "done"
    await arbiter.aclose()
