"""Getting a usable confidence out of an LLM.

Arbiter's thresholds (``auto_allow_at``) are tuned on confidences and their
recorded outcomes (``arbiter tune``). Tuning assumes the confidences are
*calibrated*: among calls sent with 0.9, about 90% should turn out right.
Verbal confidence ("I am 95% sure") usually is not. Two better sources:

- **token log-probabilities**, when the provider returns them: the
  probability the model gave the tokens of its choice (``from_logprobs``);
- **self-consistency**: ask k times (temperature > 0) and take the share of
  answers that agree with the majority (``self_consistency``).

Neither is calibrated by construction. Check it on your own history:
``arbiter tune --db arbiter.db --plots out/`` draws a reliability diagram per
action class (predicted confidence against the observed share of correct
outcomes); a curve far from the diagonal means the thresholds' error bounds
do not hold for that agent. Record outcomes (``Client.record_outcome``) so
there is something to check against.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Hashable, Iterable, Optional, Sequence, TypeVar

T = TypeVar("T", bound=Hashable)


def from_logprobs(logprobs: Iterable[float], *, reduce: str = "mean") -> float:
    """A confidence in [0, 1] from the log-probabilities of the tokens that carry the decision.

    Pass the logprobs of the tokens that *are* the choice (the tool name and its key
    arguments, or a single label token), not of the whole text: long free text drives
    the joint probability towards zero whatever the model's certainty.

    ``reduce``: ``"mean"`` (geometric mean of the token probabilities, the default),
    ``"min"`` (the least certain token) or ``"joint"`` (their product).
    """
    lps = [float(x) for x in logprobs]
    if not lps:
        raise ValueError("no log-probabilities given")
    if any(lp > 0 or math.isnan(lp) for lp in lps):
        raise ValueError("log-probabilities must be <= 0")
    if reduce == "mean":
        return math.exp(sum(lps) / len(lps))
    if reduce == "min":
        return math.exp(min(lps))
    if reduce == "joint":
        return math.exp(sum(lps))
    raise ValueError(f"unknown reduce {reduce!r}: mean, min or joint")


def openai_logprobs(choice_logprobs: Any) -> list[float]:
    """The token log-probabilities of an OpenAI chat completion choice's ``logprobs``
    (``choice.logprobs`` with ``logprobs=True`` in the request), as floats."""
    content = getattr(choice_logprobs, "content", None)
    if content is None and isinstance(choice_logprobs, dict):
        content = choice_logprobs.get("content")
    if not content:
        return []
    return [float(t["logprob"] if isinstance(t, dict) else t.logprob) for t in content]


def self_consistency(answers: Sequence[T]) -> tuple[Optional[T], float]:
    """The majority answer among k samples and the share that agree with it.

    ``answers`` must be comparable values: a normalised tool call, e.g.
    ``(name, json.dumps(args, sort_keys=True))``. With k samples the confidence
    moves in steps of 1/k; k = 5 to 10 is usual.
    """
    if not answers:
        return None, 0.0
    counts = Counter(answers)
    best, n = counts.most_common(1)[0]
    return best, n / len(answers)
