"""The Python examples run as documented against the SOC example policy (the LangGraph one is
run by test_langgraph.py, across a restart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"


def run(example: str, server, key: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARBITER_URL": server.url, "ARBITER_KEY": key, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(EXAMPLES / example), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_guard_example(soc_server):
    out = run("guard_plain.py", soc_server, soc_server.key("soc-triage-agent", "agent"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "alert A-4711 closed as duplicate"
    assert lines[1].startswith("refused: ") and "decision" in lines[1]


def test_openai_agents_example(soc_server):
    out = run("openai_agents_soc.py", soc_server, soc_server.key("soc-triage-agent", "agent"))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    closed, refused = result["tool_outputs"]
    assert closed == "alert A-4711 closed as duplicate"
    assert refused.startswith("Not run: Arbiter denied `block_ip`"), refused
    assert result["final"].startswith("Closed the duplicate")
