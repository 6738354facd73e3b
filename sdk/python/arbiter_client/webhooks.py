"""Receiving Arbiter's webhooks: check the signature, read the event.

Each delivery carries ``Arbiter-Signature: t=<unix seconds>,v1=<hex>``, where
``v1`` is HMAC-SHA256(secret, ``"<t>.<raw body>"``) (docs/review.md). A
``case.decided`` event is how a stopped LangGraph graph learns it can resume
without anyone polling::

    event = verify(secret, request.headers["Arbiter-Signature"], request.body)
    if event["type"] == "case.decided" and event["event"]["decision_id"] in pending_decisions(graph, config):
        graph.invoke(Command(resume=True), config)

Deliveries are at least once: de-duplicate by ``delivery_id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Optional, Union

from .errors import ArbiterError


class BadSignature(ArbiterError):
    """The delivery was not signed with this secret, or is too old."""


def verify(secret: str, signature_header: str, body: Union[bytes, str], *, tolerance: float = 300.0,
           now: Optional[float] = None) -> dict[str, Any]:
    """Check a delivery's ``Arbiter-Signature`` (constant-time, and at most ``tolerance`` seconds old)
    and return its JSON body."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    parts = dict(p.split("=", 1) for p in signature_header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
        v1 = parts["v1"]
    except (KeyError, ValueError) as e:
        raise BadSignature(f"malformed Arbiter-Signature header: {signature_header!r}") from e
    expected = hmac.new(secret.encode("utf-8"), f"{t}.".encode("ascii") + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, v1):
        raise BadSignature("the signature does not match: another secret, or an altered body")
    if abs((now if now is not None else time.time()) - t) > tolerance:
        raise BadSignature(f"the delivery is {abs((now or time.time()) - t):.0f} s old (more than {tolerance:.0f} s)")
    event: dict[str, Any] = json.loads(raw)
    return event
