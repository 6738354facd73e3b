"""The OpenAI Agents SDK with the real library and its own scripted test model: a denied call's
reason reaches the model; escalated calls wait in the run, or stop it for approvals that
Arbiter's verdicts answer (a rejection message the model reads, a modification that runs)."""

from __future__ import annotations

from agents import Agent, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from arbiter_client import AsyncClient
from arbiter_client.integrations.openai_agents import governed, resolve

from conftest import answer_soon

ran: list[tuple] = []


@function_tool
def isolate_host(host: str, mode: str = "full") -> str:
    """Isolate a host from the network."""
    ran.append(("isolate_host", host, mode))
    return f"{host} isolated ({mode})"


@function_tool
def wipe_disk(host: str) -> str:
    """Wipe a host's disk."""
    ran.append(("wipe_disk", host))
    return "wiped"


def tool_outputs(model: ScriptedModel) -> list[str]:
    """What the model was shown as tool outputs on its last call."""
    items = model.last_call.input
    return [i["output"] for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]


async def test_a_denied_call_tells_the_model_why(server, agent_key):
    ran.clear()
    arbiter = AsyncClient(server.url, agent_key)
    model = ScriptedModel([
        [function_call("wipe_disk", {"host": "web-1"}, call_id="call_w")],
        [assistant_message("I will not wipe it.")],
    ])
    agent = Agent(name="soc", instructions="triage", model=model,
                  tools=[governed(wipe_disk, arbiter, confidence=lambda args: 0.99)])
    result = await Runner.run(agent, "wipe web-1")
    assert ran == []
    (output,) = tool_outputs(model)
    assert "Wiping disks is never done by an agent." in output and "Arbiter denied" in output
    assert result.final_output == "I will not wipe it."


async def test_an_escalated_call_waits_in_the_run_and_runs_the_modification(server, agent_key, reviewer):
    ran.clear()
    arbiter = AsyncClient(server.url, agent_key)
    model = ScriptedModel([
        [function_call("isolate_host", {"host": "srv-db-01", "mode": "full"}, call_id="call_i")],
        [assistant_message("Isolated.")],
    ])
    agent = Agent(name="soc", instructions="triage", model=model,
                  tools=[governed(isolate_host, arbiter, confidence=lambda args: 0.8)])
    answer_soon(server, reviewer, lambda case: case["action_name"] == "isolate_host", "modify",
                "network only for a database", {"host": "srv-db-01", "mode": "network_only"})
    result = await Runner.run(agent, "isolate srv-db-01")
    assert ran == [("isolate_host", "srv-db-01", "network_only")]
    assert tool_outputs(model) == ["srv-db-01 isolated (network_only)"]
    assert result.final_output == "Isolated."


async def test_approvals_stop_the_run_and_arbiter_answers_them(server, agent_key, reviewer):
    ran.clear()
    arbiter = AsyncClient(server.url, agent_key)
    model = ScriptedModel([
        [function_call("isolate_host", {"host": "ws-1"}, call_id="call_a"),
         function_call("isolate_host", {"host": "dc-01"}, call_id="call_b")],
        [assistant_message("One isolated, one refused.")],
    ])
    agent = Agent(name="soc", instructions="triage", model=model,
                  tools=[governed(isolate_host, arbiter, confidence=lambda args: 0.8, approvals=True)])
    first = await Runner.run(agent, "isolate the infected hosts")
    assert len(first.interruptions) == 2 and ran == []
    cases = {c["decision_id"]: c for c in server.open_cases(reviewer)}
    assert len(cases) == 2
    for decision_id in cases:
        d = await arbiter.get(decision_id)
        if d.action.args["host"] == "ws-1":
            server.answer(reviewer, decision_id, "approve", "confirmed beacon")
        else:
            server.answer(reviewer, decision_id, "reject", "the domain controller stays up")
    state = await resolve(first, arbiter)
    second = await Runner.run(agent, state)
    assert ran == [("isolate_host", "ws-1", "full")]
    outputs = tool_outputs(model)
    assert "ws-1 isolated (full)" in outputs
    refused = [o for o in outputs if "domain controller stays up" in o]
    assert refused and "Arbiter denied" in refused[0], outputs
    assert second.final_output == "One isolated, one refused."
    # the run found its decisions again: still two, both settled by review
    for decision_id in cases:
        assert (await arbiter.get(decision_id)).final.source == "review"
