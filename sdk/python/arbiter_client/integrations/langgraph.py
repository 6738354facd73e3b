"""LangGraph: a tool node that sends every tool call through Arbiter.

Use :class:`ArbiterToolNode` (or :class:`AsyncArbiterToolNode` in an async
graph) where you would use LangGraph's ``ToolNode``::

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

import asyncio
import json
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, cast

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.types import Command, interrupt

from ..client import AsyncClient, Client
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

    def _proposal(self, call: Mapping[str, Any], state: Any, config: Optional[RunnableConfig]) -> dict[str, Any]:
        ctx = self.context(call, state) if self.context else None
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        base: dict[str, Any] = {"langgraph": {"thread_id": thread, "tool_call_id": call["id"], "tool": call["name"]}}
        if isinstance(ctx, Mapping):
            base.update(ctx)
        return {
            "action": self.action(call["name"]),
            "args": call.get("args") or {},
            "confidence": self.confidence(call, state) if self.confidence else None,
            "signals": self.signals(call, state) if self.signals else None,
            "context": base,
            "idempotency_key": _key(config, call["id"]),
        }

    def _calls(self, state: Any) -> list[Any]:
        messages = state[self.messages_key] if isinstance(state, Mapping) else getattr(state, self.messages_key)
        last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        return list(last.tool_calls) if last is not None else []

    @staticmethod
    def _refusal(call: Mapping[str, Any], d: Decision) -> ToolMessage:
        who = d.final.source if d.final else "policy"
        return ToolMessage(
            content=f"Not run: Arbiter denied `{call['name']}` ({who}): {d.reason}. Do not retry the same call "
                    f"unchanged. (decision {d.id})",
            tool_call_id=call["id"], name=call["name"], status="error")

    @staticmethod
    def _message(call: Mapping[str, Any], content: str, error: bool = False) -> ToolMessage:
        return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"],
                           status="error" if error else "success")

    @staticmethod
    def _pending(pending: list[Decision]) -> dict[str, Any]:
        return {INTERRUPT_KEY: [
            {"decision_id": d.id, "case_id": d.case_id, "action": d.action.name, "args": d.action.args,
             "reviewers": d.escalation.reviewers if d.escalation else [], "explanation": d.explanation}
            for d in pending]}

    def _runnable(self, call: Mapping[str, Any], d: Decision) -> "ToolMessage | BaseTool":
        """The tool to run for an allowed call, or the message that says why it does not run."""
        if not d.allowed:
            return self._refusal(call, d)
        tool = self.tools.get(call["name"])
        if tool is None:
            return self._message(call, f"unknown tool `{call['name']}`", error=True)
        return tool

    def _run(self, call: Mapping[str, Any], d: Decision) -> ToolMessage:
        tool = self._runnable(call, d)
        if isinstance(tool, ToolMessage):
            return tool
        try:
            result = tool.invoke(d.action_to_run.args)
        except Exception as e:  # the tool's own failure goes back to the model, and on the record
            self._record(d, repr(e), True)
            return self._message(call, f"the tool failed: {e}", error=True)
        self._record(d, _text(result), False)
        return self._message(call, _text(result))

    def _record(self, d: Decision, content: Any, is_error: bool) -> None:
        if not self.record_results:
            return
        try:
            self.client.record_result(d, content, is_error=is_error)
        except ArbiterError:
            pass

    def __call__(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        calls = self._calls(state)
        if not calls:
            return {self.messages_key: []}
        decisions = {c["id"]: self.client.propose(**self._proposal(c, state, config)) for c in calls}
        if self.mode == "blocking":
            decisions = {i: self.client.wait(d, timeout=self.timeout) for i, d in decisions.items()}
        else:
            # One interrupt lists every pending call; on resume the node runs again, finds the
            # same decisions by their idempotency keys, and asks again if some are still open.
            while True:
                pending = [d for d in decisions.values() if not d.is_final]
                if not pending:
                    break
                interrupt(self._pending(pending))
                decisions = {i: (d if d.is_final else self.client.get(d)) for i, d in decisions.items()}
        return {self.messages_key: [self._run(c, decisions[c["id"]]) for c in calls]}


class AsyncArbiterToolNode(ArbiterToolNode):
    """:class:`ArbiterToolNode` for async graphs (``await graph.ainvoke(...)``), with an
    :class:`~arbiter_client.AsyncClient`: the proposals, waits and tools run as coroutines
    (``tool.ainvoke``), so one event loop serves many waiting calls."""

    def __init__(self, tools: Sequence[BaseTool], client: AsyncClient, **kw: Any) -> None:
        super().__init__(tools, cast(Client, client), **kw)
        self.aclient = client

    async def _arun(self, call: Mapping[str, Any], d: Decision) -> ToolMessage:
        tool = self._runnable(call, d)
        if isinstance(tool, ToolMessage):
            return tool
        try:
            result = await tool.ainvoke(d.action_to_run.args)
        except Exception as e:
            await self._arecord(d, repr(e), True)
            return self._message(call, f"the tool failed: {e}", error=True)
        await self._arecord(d, _text(result), False)
        return self._message(call, _text(result))

    async def _arecord(self, d: Decision, content: Any, is_error: bool) -> None:
        if not self.record_results:
            return
        try:
            await self.aclient.record_result(d, content, is_error=is_error)
        except ArbiterError:
            pass

    async def __call__(self, state: Any, config: RunnableConfig) -> dict[str, Any]:  # type: ignore[override]
        calls = self._calls(state)
        if not calls:
            return {self.messages_key: []}
        proposed = await asyncio.gather(*(self.aclient.propose(**self._proposal(c, state, config)) for c in calls))
        decisions = {c["id"]: d for c, d in zip(calls, proposed)}
        if self.mode == "blocking":
            finals = await asyncio.gather(*(self.aclient.wait(d, timeout=self.timeout) for d in decisions.values()))
            decisions = dict(zip(decisions, finals))
        else:
            while True:
                pending = [d for d in decisions.values() if not d.is_final]
                if not pending:
                    break
                interrupt(self._pending(pending))
                fresh = await asyncio.gather(*(self.aclient.get(d) for d in pending))
                by_id = {d.id: d for d in fresh}
                decisions = {i: by_id.get(d.id, d) for i, d in decisions.items()}
        results = await asyncio.gather(*(self._arun(c, decisions[c["id"]]) for c in calls))
        return {self.messages_key: list(results)}


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
