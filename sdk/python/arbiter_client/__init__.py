"""Python client for Arbiter: send an AI agent's actions through a policy,
wait for people when it escalates, and record what happened.

    from arbiter_client import Client

    arbiter = Client("http://127.0.0.1:8080", key="arb_...")
    d = arbiter.decide("isolate_host", {"host": "web-17"}, confidence=0.93)
    if d.allowed:
        isolate(**d.action_to_run.args)

See docs/integrations.md for LangGraph, the OpenAI Agents SDK and ``guard``.
"""

from .client import AsyncClient, Client
from .errors import ApiError, ArbiterError, Denied, ReceiptInvalid, TransportError
from .guard import guard, guarded
from .models import Action, Decision, Escalation, FinalVerdict, Problem, Receipt, ReceiptKey

__all__ = [
    "Action",
    "ApiError",
    "ArbiterError",
    "AsyncClient",
    "Client",
    "Decision",
    "Denied",
    "Escalation",
    "FinalVerdict",
    "Problem",
    "Receipt",
    "ReceiptInvalid",
    "ReceiptKey",
    "TransportError",
    "guard",
    "guarded",
]

__version__ = "0.1.0"
