"""Signed approval receipts: RFC 8785 canonical JSON and Ed25519 checks.

A receipt (``decision.final.receipt``) says which call was decided, by which
verdict, under which policy, until when. Whoever runs the call can check it
without trusting the agent that hands it over (docs/receipts.md):

    receipt = verify(decision, client.receipt_keys(), args=args_about_to_run)

Needs the ``cryptography`` package (``pip install arbiter-client[receipts]``).
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional, Union

from .errors import ReceiptInvalid
from .models import Decision, Receipt, ReceiptKey

RECEIPT_VERSION = 1


def canonical_json(value: Any) -> str:
    """RFC 8785 (JSON Canonicalization Scheme) text of a JSON value, as Arbiter computes it."""
    out: list[str] = []
    _write(out, value)
    return "".join(out)


def args_digest(args: Any) -> str:
    """``sha256:`` and the hex SHA-256 of the canonical JSON of the arguments."""
    return "sha256:" + hashlib.sha256(canonical_json(args).encode("utf-8")).hexdigest()


def _write(out: list[str], v: Any) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(_number(v))
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _write(out, item)
        out.append("]")
    elif isinstance(v, Mapping):
        out.append("{")
        # members sorted by the UTF-16 code units of their names
        for i, k in enumerate(sorted(v, key=lambda s: s.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _write(out, v[k])
        out.append("}")
    else:
        raise TypeError(f"not a JSON value: {type(v).__name__}")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    parts = ['"']
    for c in s:
        e = _ESCAPES.get(c)
        if e is not None:
            parts.append(e)
        elif ord(c) < 0x20:
            parts.append(f"\\u{ord(c):04x}")
        else:
            parts.append(c)
    parts.append('"')
    return "".join(parts)


def _number(f: float) -> str:
    """ECMAScript's Number-to-String, from the shortest round-trip digits (which Python's repr gives)."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError("NaN and infinities are not JSON")
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    t = Decimal(repr(abs(f))).as_tuple()
    digits = "".join(map(str, t.digits))
    exponent = int(t.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped.lstrip("0")
    k = len(digits)
    n = k + exponent  # the decimal point sits after `n` digits
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + head + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _receipt(value: Union[Decision, Receipt, Mapping[str, Any]]) -> Receipt:
    if isinstance(value, Decision):
        if value.final is None or value.final.receipt is None:
            raise ReceiptInvalid(f"decision {value.id} carries no receipt (not final, or receipts are off)",
                                 "malformed")
        return value.final.receipt
    if isinstance(value, Receipt):
        return value
    if "final" in value:
        return _receipt(Decision.model_validate(value))
    return Receipt.model_validate(dict(value))


def _timestamp(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def verify(value: Union[Decision, Receipt, Mapping[str, Any]], keys: Iterable[Union[ReceiptKey, Mapping[str, Any]]],
           *, args: Optional[Mapping[str, Any]] = None, allow_only: bool = True,
           now: Optional[datetime] = None) -> Receipt:
    """Check a receipt (or a decision's): signature by a published key, not expired, the
    arguments about to run match its digest (when ``args`` is given), and an ``allow``
    verdict (unless ``allow_only=False``, to check a deny receipt as proof of a refusal).

    Returns the receipt; raises :class:`ReceiptInvalid` with ``kind`` one of ``malformed``,
    ``unknown_key``, ``bad_signature``, ``expired``, ``args_mismatch``, ``not_allowed``.
    """
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("receipt checks need `cryptography`: pip install 'arbiter-client[receipts]'") from e
    r = _receipt(value)
    if r.v != RECEIPT_VERSION:
        raise ReceiptInvalid(f"receipt version {r.v} (this client reads {RECEIPT_VERSION})", "malformed")
    known = [k if isinstance(k, ReceiptKey) else ReceiptKey.model_validate(dict(k)) for k in keys]
    key = next((k for k in known if k.key_id == r.key_id), None)
    if key is None:
        raise ReceiptInvalid(f"unknown signing key `{r.key_id}`", "unknown_key")
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))
        signature = bytes.fromhex(r.signature)
    except ValueError as e:
        raise ReceiptInvalid(f"malformed key or signature: {e}", "malformed") from e
    fields = r.model_dump()
    fields.pop("signature", None)
    try:
        public.verify(signature, canonical_json(fields).encode("utf-8"))
    except InvalidSignature:
        raise ReceiptInvalid("bad signature: the receipt was altered or not signed by Arbiter",
                             "bad_signature") from None
    now = now or datetime.now(timezone.utc)
    if now > _timestamp(r.expires_at):
        raise ReceiptInvalid(f"expired at {r.expires_at}", "expired")
    if args is not None:
        got = args_digest(dict(args))
        if got != r.args_digest:
            raise ReceiptInvalid(f"the arguments do not match the receipt ({r.args_digest}, got {got})",
                                 "args_mismatch")
    if allow_only and r.verdict != "allow":
        raise ReceiptInvalid(f"the verdict is `{r.verdict}`, not allow", "not_allowed")
    return r
