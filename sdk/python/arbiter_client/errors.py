"""Exceptions: every API error carries the server's problem+json fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .models import Decision, Problem


class ArbiterError(Exception):
    """Base class of everything this package raises on purpose."""


class ApiError(ArbiterError):
    """The server answered with an error (problem+json).

    ``code`` is the stable error code (``unauthorized``, ``rate_limited``,
    ``invalid_request``, ...); ``status`` the HTTP status; ``detail`` says what
    to do; ``problem`` is the whole document.
    """

    def __init__(self, problem: "Problem") -> None:
        self.problem = problem
        self.status: int = problem.status
        self.code: str = problem.code
        self.title: str = problem.title
        self.detail: str = problem.detail
        self.field: Optional[str] = problem.field
        super().__init__(f"{problem.status} {problem.code}: {problem.detail}")


class TransportError(ArbiterError):
    """The server could not be reached, or the answer was not Arbiter's (after the retries)."""


class Denied(ArbiterError):
    """The action's final verdict is deny: it must not run.

    ``decision`` is the record (``decision.final.source`` says who refused:
    ``policy``, ``review``, ``sla_expired``, ``agent_case_cap`` or
    ``withdrawn``); ``reason`` is the text to show the model or a person.
    """

    def __init__(self, decision: "Decision") -> None:
        self.decision = decision
        self.reason: str = decision.reason
        source = decision.final.source if decision.final else "policy"
        who = {
            "policy": "Arbiter's policy denied",
            "review": "a reviewer denied",
            "sla_expired": "no reviewer answered in time; the fallback denied",
            "agent_case_cap": "too many of this agent's calls are waiting; Arbiter denied",
            "withdrawn": "the call was withdrawn, so Arbiter denied",
        }.get(source, "Arbiter denied")
        super().__init__(f"{who} `{decision.action.name}`: {self.reason} (decision {decision.id})")


class ReceiptInvalid(ArbiterError):
    """A receipt does not authorise the call: bad signature, unknown key, expired, other arguments or not allow."""

    def __init__(self, message: str, kind: str) -> None:
        self.kind = kind
        super().__init__(message)


def problem_from(status: int, body: Any) -> "Problem":
    """Read a problem document, or make one from an answer that is not."""
    from .models import Problem

    if isinstance(body, dict) and "code" in body:
        try:
            return Problem.model_validate(body)
        except Exception:  # a malformed problem is still an error; describe it below
            pass
    return Problem(
        type="about:blank",
        title="unexpected answer",
        status=status,
        detail=str(body)[:500],
        code="unexpected_answer",
    )
