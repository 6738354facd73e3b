"""Typed models of Arbiter's wire format (pydantic v2).

Field names are the JSON names of the HTTP API (docs/openapi.json); a test
compares every model here with its schema in that document, so they cannot
drift. Unknown fields a newer server adds are kept (``extra="allow"``), never
an error.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["allow", "deny", "escalate"]
FinalVerdictValue = Literal["allow", "deny"]
FinalSource = Literal["policy", "review", "sla_expired", "agent_case_cap", "withdrawn"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Action(_Model):
    """A proposed tool call."""

    name: str
    """The action class, e.g. ``isolate_host`` (letters, digits, ``_ . -``)."""
    args: dict[str, Any] = Field(default_factory=dict)
    """The tool's arguments."""
    confidence: Optional[float] = None
    """The agent's confidence in [0, 1], if it gives one (see ``arbiter_client.confidence``)."""
    signals: dict[str, Any] = Field(default_factory=dict)
    """Other numeric or categorical signals (anomaly scores, alert types, ...)."""


class FiredTrigger(_Model):
    """A policy trigger that fired."""

    name: str
    verdict: Verdict
    reason: str


class Tier(_Model):
    """A further tier of reviewers after the first one's SLA runs out."""

    reviewers: list[str]
    sla: str


class Escalation(_Model):
    """Who must answer an escalated decision, how soon, and what happens if nobody does."""

    severity: str
    reviewers: list[str]
    approvals: int
    sla: str
    fallback: FinalVerdictValue
    tiers: list[Tier]


class Receipt(_Model):
    """The signed statement of a final verdict (docs/receipts.md)."""

    v: int
    decision_id: str
    agent: str
    action: str
    args_digest: str
    verdict: FinalVerdictValue
    policy_hash: str
    issued_at: str
    expires_at: str
    key_id: str
    signature: str


class ReceiptKey(_Model):
    """A published receipt key."""

    key_id: str
    algorithm: str
    public_key: str
    created_at: str
    active: bool


class FinalVerdict(_Model):
    """The verdict the agent acts on."""

    verdict: FinalVerdictValue
    source: FinalSource
    action: Optional[Action] = None
    """The action to perform when reviewers modified the proposed one."""
    decided_by: list[str] = Field(default_factory=list)
    rationale: str
    decided_at: str
    receipt: Optional[Receipt] = None


class Outcome(_Model):
    """What became of a decision, recorded later."""

    correct: bool
    cost: Optional[float] = None
    label: Optional[str] = None
    recorded_at: str
    recorded_by: str
    note: Optional[str] = None


class ToolResult(_Model):
    """What the tool returned when the allowed action ran."""

    content: Any
    is_error: bool
    truncated: bool = False
    recorded_by: str
    recorded_at: str


class AuditDraw(_Model):
    """The audit draw of an allowed decision of a class the policy samples for audit."""

    probability: float
    """The inclusion probability it was drawn with (the class's ``audit_sample``)."""
    selected: bool
    """Whether it was drawn: a reviewer labels it afterwards. The agent is never held for it."""


class Decision(_Model):
    """One proposal and everything Arbiter decided about it."""

    id: str
    agent: str
    agent_key_id: str
    idempotency_key: Optional[str] = None
    action: Action
    trace_id: Optional[str] = None
    context: dict[str, Any]
    verdict: Verdict
    """The policy's first answer. The agent acts on ``final``, not on this."""
    status: str
    triggers: list[FiredTrigger]
    explanation: str
    escalation: Optional[Escalation] = None
    policy_hash: str
    case_id: Optional[str] = None
    received_at: str
    event_time: str
    eval_micros: int
    final: Optional[FinalVerdict] = None
    condition_errors: list[str] = Field(default_factory=list)
    outcome: Optional[Outcome] = None
    subject: Optional[str] = None
    threshold: Optional[float] = None
    tool_result: Optional[ToolResult] = None
    audit: Optional[AuditDraw] = None
    event_time_skew_ms: Optional[int] = None
    """Set when the server took an event time outside the default ±5 min (a server that takes replays)."""

    @property
    def is_final(self) -> bool:
        """Whether the verdict the agent acts on is known."""
        return self.final is not None

    @property
    def allowed(self) -> bool:
        """Whether the final verdict allows the action."""
        return self.final is not None and self.final.verdict == "allow"

    @property
    def action_to_run(self) -> Action:
        """The action to perform: the reviewers' modification when there was one."""
        if self.final is not None and self.final.action is not None:
            return self.final.action
        return self.action

    @property
    def reason(self) -> str:
        """Why, in words for the model or a log: the reviewers' rationale or the policy's explanation."""
        if self.final is None:
            return self.explanation
        if self.final.source == "policy":
            reasons = [t.reason for t in self.triggers if t.verdict == self.final.verdict]
            return "; ".join(reasons) if reasons else self.final.rationale
        return self.final.rationale


class DecisionRequest(_Model):
    """The body of ``POST /v1/decisions``."""

    action: Action
    trace_id: Optional[str] = None
    context: Optional[Any] = None
    event_time: Optional[str] = None


class OutcomeRequest(_Model):
    """The body of ``POST /v1/decisions/{id}/outcome``."""

    correct: bool
    cost: Optional[float] = None
    label: Optional[str] = None
    note: Optional[str] = None


class Problem(_Model):
    """An RFC 9457 problem document, as every API error is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: Optional[str] = None
    errors: Optional[Any] = None
    triggers: Optional[Any] = None
    needed: Optional[Any] = None
    have: Optional[Any] = None
    impact: Optional[Any] = None
    lessons: Optional[Any] = None
