"""OpenAI Agents SDK: tools whose every call goes through Arbiter.

    from agents import function_tool
    from arbiter_client.integrations.openai_agents import governed

    isolate = governed(function_tool(isolate_host), arbiter)                  # waits inside the run
    isolate = governed(function_tool(isolate_host), arbiter, approvals=True)  # the run stops for people

Each call is proposed to Arbiter (action = the tool's name, args = the
call's arguments; idempotency key ``openai-agents:<call id>``):

- allow runs the tool, with a reviewer's modified arguments when they changed
  them, and keeps its output on the decision;
- deny returns a message the model sees instead of the tool's output (the
  reason and the decision id), so it can change course;
- escalate: by default the tool call waits for the final verdict inside the
  run. With ``approvals=True`` the tool's ``needs_approval`` asks Arbiter, and
  the run stops with ``result.interruptions`` for escalated calls like for any
  approval; :func:`resolve` waits for Arbiter's verdicts and approves or rejects
  each interruption (rejections carry Arbiter's reason as the message the model
  sees), and you continue with ``Runner.run(agent, state)``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Mapping, Optional

from agents import FunctionTool, RunContextWrapper, RunState
from agents.tool_context import ToolContext

from ..client import AsyncClient
from ..errors import ArbiterError
from ..models import Decision


def _key(call_id: str) -> str:
    return f"openai-agents:{call_id}"


def rejection_message(d: Decision) -> str:
    """What the model reads when Arbiter refuses a call."""
    who = d.final.source if d.final else "policy"
    return (f"Not run: Arbiter denied `{d.action.name}` ({who}): {d.reason}. Do not retry the same call unchanged; "
            f"change the approach or ask the user. (decision {d.id})")


@dataclasses.dataclass
class _Governance:
    client: AsyncClient
    action: str
    confidence: Optional[Callable[[Mapping[str, Any]], Optional[float]]]
    signals: Optional[Callable[[Mapping[str, Any]], Any]]

    async def propose(self, call_id: str, args: Mapping[str, Any]) -> Decision:
        return await self.client.propose(
            self.action, dict(args),
            confidence=self.confidence(args) if self.confidence else None,
            signals=self.signals(args) if self.signals else None,
            context={"openai_agents": {"call_id": call_id}},
            idempotency_key=_key(call_id))


def governed(tool: FunctionTool, client: AsyncClient, *, action: Optional[str] = None,
             confidence: Optional[Callable[[Mapping[str, Any]], Optional[float]]] = None,
             signals: Optional[Callable[[Mapping[str, Any]], Any]] = None,
             approvals: bool = False, timeout: Optional[float] = None,
             record_results: bool = True) -> FunctionTool:
    """A copy of ``tool`` whose calls go through Arbiter (see the module's text)."""
    gov = _Governance(client, action or tool.name, confidence, signals)
    inner = tool.on_invoke_tool

    async def on_invoke(ctx: ToolContext[Any], raw: str) -> Any:
        args = json.loads(raw) if raw else {}
        d = await gov.propose(ctx.tool_call_id, args)
        d = await client.wait(d, timeout=timeout)
        if not d.allowed:
            return rejection_message(d)
        result = await inner(ctx, json.dumps(d.action_to_run.args))
        if record_results:
            try:
                await client.record_result(d, result if isinstance(result, (str, int, float, bool, list, dict))
                                           else str(result))
            except ArbiterError:
                pass
        return result

    async def needs_approval(_ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
        d = await gov.propose(call_id, params)
        # allowed at once: no stop; denied at once: stop too, so the rejection reaches the model via resolve()
        return not d.allowed

    governed_tool = dataclasses.replace(tool, on_invoke_tool=on_invoke,
                                        needs_approval=needs_approval if approvals else tool.needs_approval)
    setattr(governed_tool, "_arbiter", gov)
    return governed_tool


async def resolve(result: Any, client: AsyncClient, *, timeout: Optional[float] = None) -> RunState:
    """Answer a stopped run's approval requests with Arbiter's verdicts.

    Waits for each interrupted call's decision to be final, then approves it
    (allow) or rejects it with Arbiter's reason as the message the model sees
    (deny). Interruptions of tools that are not governed are left alone.
    Returns the run state to continue with ``Runner.run(agent, state)``.
    """
    state: RunState = result.to_state()
    tools = {t.name: t for t in getattr(result.last_agent, "tools", [])}
    for item in result.interruptions:
        raw = item.raw_item
        name = getattr(raw, "name", None) or (raw.get("name") if isinstance(raw, dict) else None)
        call_id = getattr(raw, "call_id", None) or (raw.get("call_id") if isinstance(raw, dict) else None)
        gov = getattr(tools.get(name), "_arbiter", None)
        if gov is None or call_id is None:
            continue
        arguments = getattr(raw, "arguments", None) or (raw.get("arguments") if isinstance(raw, dict) else "{}")
        d = await gov.propose(call_id, json.loads(arguments or "{}"))
        d = await client.wait(d, timeout=timeout)
        if d.allowed:
            state.approve(item)
        else:
            state.reject(item, rejection_message=rejection_message(d))
    return state
