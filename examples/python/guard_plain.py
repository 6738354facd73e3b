#!/usr/bin/env python3
"""Plain Python functions behind Arbiter with `guard`.

    arbiter serve --policy examples/policies/soc.yaml        # and create an agent key
    export ARBITER_URL=http://127.0.0.1:8080 ARBITER_KEY=arb_...
    examples/python/guard_plain.py                  # allowed and denied calls
    examples/python/guard_plain.py --escalate       # also one that waits for an analyst

Each call of a guarded function is proposed first: allowed, it runs; denied,
`Denied` is raised with the reason; escalated, the call waits for the final
verdict and runs with the analyst's arguments if they changed them.
"""

from __future__ import annotations

import argparse

from arbiter_client import Client, Denied, guard

arbiter = Client()  # ARBITER_URL, ARBITER_KEY


@guard(action="close_alert", client=arbiter, confidence=0.97)
def close_alert(alert_id: str, resolution: str) -> str:
    return f"alert {alert_id} closed as {resolution}"


@guard(action="block_ip", client=arbiter, confidence=0.95)
def block_ip(ip: str, direction: str, duration_hours: int) -> str:
    return f"{ip} blocked {direction} for {duration_hours} h"


@guard(action="isolate_host", client=arbiter, confidence=0.80,
       signals={"alert_type": "malware", "alert_severity": "high"})
def isolate_host(host: str, host_tags: list[str], mode: str = "full") -> str:
    return f"{host} isolated ({mode})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--escalate", action="store_true", help="also isolate a host (waits for an analyst)")
    a = ap.parse_args()
    print(close_alert("A-4711", "duplicate"))
    try:
        block_ip("8.8.8.8", "outbound", 24)
    except Denied as e:
        print(f"refused: {e.reason} (decision {e.decision.id})")
    if a.escalate:
        print("waiting for an analyst: answer the case in the console or with `arbiter cases`")
        print(isolate_host("ws-7", ["workstation"]))


if __name__ == "__main__":
    main()
