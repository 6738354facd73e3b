#!/usr/bin/env python3
"""An OpenAI Agents SDK triage agent whose tools go through Arbiter.

    arbiter serve --policy examples/policies/soc.yaml        # and create an agent key
    export ARBITER_URL=http://127.0.0.1:8080 ARBITER_KEY=arb_...
    examples/python/openai_agents_soc.py

The model is the Agents SDK's own scripted test model (offline, deterministic):
it closes a duplicate alert and blocks 8.8.8.8 in one turn. The SOC policy
allows the first and refuses the second (`block_dns_resolver`), and the model's
next turn sees Arbiter's reason as that tool's output. With a real model, put
`model="gpt-..."` on the Agent. Pass `--approvals` to stop the run for escalated
calls instead of waiting inside it (then `resolve()` answers the approvals with
Arbiter's verdicts). Needs `pip install 'arbiter-client[openai-agents]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from agents import Agent, Runner, function_tool  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402

from arbiter_client import AsyncClient  # noqa: E402
from arbiter_client.integrations.openai_agents import governed, resolve  # noqa: E402


@function_tool
def close_alert(alert_id: str, resolution: str) -> str:
    """Close an alert with a resolution (benign, false_positive, duplicate, resolved)."""
    return f"alert {alert_id} closed as {resolution}"


@function_tool
def block_ip(ip: str, direction: str, duration_hours: int) -> str:
    """Block an IP address at the firewall."""
    return f"{ip} blocked {direction} for {duration_hours} h"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--approvals", action="store_true", help="stop the run for escalated calls")
    a = ap.parse_args()
    arbiter = AsyncClient()
    model = ScriptedModel([
        [function_call("close_alert", {"alert_id": "A-4711", "resolution": "duplicate"}, call_id="call_close"),
         function_call("block_ip", {"ip": "8.8.8.8", "direction": "outbound", "duration_hours": 24},
                       call_id="call_block")],
        [assistant_message("Closed the duplicate; Arbiter refused the block, escalating to a human analyst.")],
    ])
    # The confidence the agent reports per tool: fixed here; see arbiter_client.confidence for real ones.
    confidence = {"close_alert": 0.97, "block_ip": 0.95}
    tools = [governed(t, arbiter, confidence=lambda args, name=t.name: confidence[name], approvals=a.approvals)
             for t in (close_alert, block_ip)]
    agent = Agent(name="soc-triage", instructions="Triage the alert with your tools.", model=model, tools=tools)
    result = await Runner.run(agent, "Alert A-4711 is a duplicate; 8.8.8.8 looked suspicious.")
    while result.interruptions:  # only with --approvals: Arbiter's verdicts answer them
        result = await Runner.run(agent, await resolve(result, arbiter))
    outputs = [i["output"] for i in model.last_call.input
               if isinstance(i, dict) and i.get("type") == "function_call_output"]
    print(json.dumps({"tool_outputs": outputs, "final": result.final_output}, indent=2))
    await arbiter.aclose()


if __name__ == "__main__":
    asyncio.run(main())
