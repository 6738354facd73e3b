#!/usr/bin/env python3
"""A LangGraph SOC triage agent whose tool calls go through Arbiter, in interrupt mode.

The graph stops when a call waits for an analyst and is resumed later, by
another process if need be: the pending decisions live in the SQLite
checkpointer (and in Arbiter), so a restarted process finds the same
decisions instead of making new ones.

    export ARBITER_URL=http://127.0.0.1:8080 ARBITER_KEY=arb_...   # an agent key
    examples/python/langgraph_soc.py start  --thread alert-4711    # runs until an analyst is needed
    arbiter cases ...                                              # an analyst answers in the console or CLI
    examples/python/langgraph_soc.py resume --thread alert-4711    # waits for the verdicts, finishes the run

The model here is LangChain's own fake chat model, scripted to call two tools
at once (so it runs offline and deterministically); put your chat model in
`model()` for a real agent. Needs `pip install 'arbiter-client[langgraph]'
langgraph-checkpoint-sqlite`.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from arbiter_client import Client
from arbiter_client.integrations.langgraph import ArbiterToolNode, pending_decisions, resume_command

ACTIONS_LOG = os.environ.get("SOC_ACTIONS_LOG", "soc-actions.jsonl")


@tool
def isolate_host(host: str, mode: str = "full") -> str:
    """Isolate a host from the network."""
    with open(ACTIONS_LOG, "a") as f:
        f.write(json.dumps({"tool": "isolate_host", "host": host, "mode": mode}) + "\n")
    return f"{host} isolated ({mode})"


@tool
def close_alert(alert_id: str, resolution: str) -> str:
    """Close an alert with a resolution."""
    with open(ACTIONS_LOG, "a") as f:
        f.write(json.dumps({"tool": "close_alert", "alert_id": alert_id, "resolution": resolution}) + "\n")
    return f"alert {alert_id} closed as {resolution}"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def model(phase: str) -> GenericFakeChatModel:
    """The agent's model: scripted for this example (replace with a real chat model bound to the tools)."""
    if phase == "start":
        return GenericFakeChatModel(messages=iter([AIMessage(content="", tool_calls=[
            {"name": "isolate_host", "args": {"host": "srv-db-01", "mode": "full"}, "id": "call_isolate_1"},
            {"name": "close_alert", "args": {"alert_id": "A-4711", "resolution": "duplicate"}, "id": "call_close_1"},
        ])]))
    return GenericFakeChatModel(messages=iter([AIMessage(content="Triage done.")]))


def build(phase: str, arbiter: Client, checkpointer: SqliteSaver):
    llm = model(phase)

    def agent(state: State) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    # The model's confidence for each call: here a fixed table; see arbiter_client.confidence for real ones.
    confidence = {"isolate_host": 0.82, "close_alert": 0.97}
    g = StateGraph(State)
    g.add_node("agent", agent)
    g.add_node("tools", ArbiterToolNode([isolate_host, close_alert], arbiter, mode="interrupt",
                                        confidence=lambda call, state: confidence.get(call["name"])))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", route, ["tools", END])
    g.add_edge("tools", "agent")
    return g.compile(checkpointer=checkpointer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["start", "resume"])
    ap.add_argument("--thread", required=True)
    ap.add_argument("--checkpoints", default="soc-checkpoints.sqlite")
    a = ap.parse_args()
    arbiter = Client()
    checkpointer = SqliteSaver(sqlite3.connect(a.checkpoints, check_same_thread=False))
    graph = build(a.phase, arbiter, checkpointer)
    config = {"configurable": {"thread_id": a.thread}}
    if a.phase == "start":
        graph.invoke({"messages": [HumanMessage("Alert A-4711: ransomware beacon from srv-db-01")]}, config)
    else:
        if not pending_decisions(graph, config):
            raise SystemExit(f"thread {a.thread} is not waiting for Arbiter")
        graph.invoke(resume_command(arbiter, graph, config), config)
    messages = graph.get_state(config).values.get("messages", [])
    print(json.dumps({
        "pending": pending_decisions(graph, config),
        "tool_messages": [{"name": m.name, "content": m.content, "status": m.status}
                          for m in messages if isinstance(m, ToolMessage)],
        "last": messages[-1].content if messages else None,
    }))


if __name__ == "__main__":
    main()
