"""LangGraph: a tool node that sends every tool call through Arbiter.

Use :class:`ArbiterToolNode` where you would use LangGraph's ``ToolNode``::

    graph.add_node("tools", ArbiterToolNode([isolate_host, close_alert], arbiter, mode="interrupt"))

Each tool call of the last AI message is proposed to Arbiter (action = the
tool's name, args = the call's arguments), all of them first, so parallel
calls each get their own decision and their cases are open at the same time.
Then, per call: allow runs the tool (with a reviewer's modified arguments,
when they changed them); deny answers the model with a ``ToolMessage`` that
says why (``status="error"``); escalate waits:

- ``mode="blocking"``: the node waits for the final verdicts (long-polls);
- ``mode="interrupt"``: the node calls LangGraph's ``interrupt()`` with the
  pending decisions, and the graph stops. Resume it with
  ``graph.invoke(resume_command(arbiter, graph, config), config)`` (which waits
  for the verdicts), or with ``Command(resume=True)`` from a webhook handler
  (``case.decided``) when you know they are final.

The idempotency key of a call is ``langgraph:<thread id>:<tool call id>``, so
the node re-executed on resume, or after the process restarted with a
persistent checkpointer, finds the same decisions instead of making new
ones. Tool call ids must be unique within a thread (model providers make
them so).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.types import Command, interrupt

from ..client import Client
from ..errors import ArbiterError
from ..models import Decision

#: The key under which the interrupt's value lists the pending decisions.
INTERRUPT_KEY = "arbiter_pending"


def _key(config: Optional[RunnableConfig], call_id: str) -> str:
    thread = ((config or {}).get("configurable") or {}).get("thread_id", "")
    return f"langgraph:{thread}:{call_id}"


def _text(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result)
    except (TypeError, ValueError):
        return str(result)


class ArbiterToolNode:
    """A LangGraph node running the last AI message's tool calls through Arbiter.

    - ``tools``: the LangChain tools the model may call;
    - ``client``: an :class:`~arbiter_client.Client`;
    - ``mode``: ``"blocking"`` or ``"interrupt"`` (see the module's text);
    - ``action``: ``f(tool_name) -> action class`` (default: the tool's name);
    - ``confidence``, ``signals``, ``context``: ``f(tool_call, state) -> value`` for
      the proposal (a tool call is ``{"name", "args", "id"}``);
    - ``timeout``: in blocking mode, how long to wait for people (default: until
      the SLA fallback decides);
    - ``record_results``: keep each tool's output on its decision.
    """

    def __init__(self, tools: Sequence[BaseTool], client: Client, *,
                 mode: Literal["blocking", "interrupt"] = "blocking",
                 action: Optional[Callable[[str], str]] = None,
                 confidence: Optional[Callable[[Mapping[str, Any], Any], Optional[float]]] = None,
                 signals: Optional[Callable[[Mapping[str, Any], Any], Any]] = None,
                 context: Optional[Callable[[Mapping[str, Any], Any], Any]] = None,
                 timeout: Optional[float] = None, record_results: bool = True,
                 messages_key: str = "messages") -> None:
        if mode not in ("blocking", "interrupt"):
            raise ValueError(f"mode is `blocking` or `interrupt`, not {mode!r}")
        self.tools = {t.name: t for t in tools}
        self.client = client
        self.mode = mode
        self.action = action or (lambda name: name)
        self.confidence = confidence
        self.signals = signals
        self.context = context
        self.timeout = timeout
        self.record_results = record_results
        self.messages_key = messages_key
        self.__name__ = "arbiter_tools"

    def _propose(self, call: Mapping[str, Any], state: Any, config: Optional[RunnableConfig]) -> Decision:
        ctx = self.context(call, state) if self.context else None
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        base = {"langgraph": {"thread_id": thread, "tool_call_id": call["id"], "tool": call["name"]}}
        if isinstance(ctx, Mapping):
            base.update(ctx)
        return self.client.propose(
            self.action(call["name"]), call.get("args") or {},
            confidence=self.confidence(call, state) if self.confidence else None,
            signals=self.signals(call, state) if self.signals else None,
            context=base, idempotency_key=_key(config, call["id"]))

    def _run(self, call: Mapping[str, Any], d: Decision) -> ToolMessage:
        if not d.allowed:
            who = d.final.source if d.final else "policy"
            return ToolMessage(
                content=f"Not run: Arbiter denied `{call['name']}` ({who}): {d.reason}. Do not retry the same call "
                        f"unchanged. (decision {d.id})",
                tool_call_id=call["id"], name=call["name"], status="error")
        tool = self.tools.get(call["name"])
        if tool is None:
            return ToolMessage(content=f"unknown tool `{call['name']}`", tool_call_id=call["id"], name=call["name"],
                               status="error")
        args = d.action_to_run.args
        try:
            result = tool.invoke(args)
        except Exception as e:  # the tool's own failure goes back to the model, and on the record
            if self.record_results:
                self._record(d, repr(e), True)
            return ToolMessage(content=f"the tool failed: {e}", tool_call_id=call["id"], name=call["name"],
                               status="error")
        if self.record_results:
            self._record(d, _text(result), False)
        return ToolMessage(content=_text(result), tool_call_id=call["id"], name=call["name"])

    def _record(self, d: Decision, content: Any, is_error: bool) -> None:
        try:
            self.client.record_result(d, content, is_error=is_error)
        except ArbiterError:
            pass

    def __call__(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        messages = state[self.messages_key] if isinstance(state, Mapping) else getattr(state, self.messages_key)
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        calls = list(last.tool_calls) if last is not None else []
        if not calls:
            return {self.messages_key: []}
        decisions = {c["id"]: self._propose(c, state, config) for c in calls}
        if self.mode == "blocking":
            decisions = {i: self.client.wait(d, timeout=self.timeout) for i, d in decisions.items()}
        else:
            # One interrupt lists every pending call; on resume the node runs again, finds the
            # same decisions by their idempotency keys, and asks again if some are still open.
            while True:
                pending = [d for d in decisions.values() if not d.is_final]
                if not pending:
                    break
                interrupt({INTERRUPT_KEY: [
                    {"decision_id": d.id, "case_id": d.case_id, "action": d.action.name, "args": d.action.args,
                     "reviewers": d.escalation.reviewers if d.escalation else [], "explanation": d.explanation}
                    for d in pending]})
                decisions = {i: (d if d.is_final else self.client.get(d)) for i, d in decisions.items()}
        return {self.messages_key: [self._run(c, decisions[c["id"]]) for c in calls]}


def pending_decisions(graph: Any, config: RunnableConfig) -> list[str]:
    """The decision ids a stopped graph waits for (from its interrupts)."""
    state = graph.get_state(config)
    ids: list[str] = []
    for intr in getattr(state, "interrupts", ()) or ():
        value = getattr(intr, "value", None)
        if isinstance(value, Mapping) and INTERRUPT_KEY in value:
            ids.extend(p["decision_id"] for p in value[INTERRUPT_KEY])
    return ids


def resume_command(client: Client, graph: Any, config: RunnableConfig, *, timeout: Optional[float] = None) -> Command[Any]:
    """Wait until every decision the graph's interrupts name is final; the ``Command`` to resume it with."""
    finals = {i: client.wait(i, timeout=timeout).final for i in pending_decisions(graph, config)}
    return Command(resume={i: (f.model_dump() if f else None) for i, f in finals.items()})
