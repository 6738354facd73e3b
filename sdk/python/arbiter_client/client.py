"""Sync and async clients of Arbiter's HTTP API, on httpx.

Both share one set of request builders and answer readers; only the sending
and the sleeping differ. What a client does for you:

- ``propose`` gives each logical call one ``Idempotency-Key`` and reuses it
  across its own retries (connection errors, 429 and 5xx, with backoff and
  ``Retry-After``), so a retry never makes a second decision;
- ``wait`` long-polls (the server caps one poll at 60 s) until the decision is
  final, however long the SLA, and returns the record: act on
  ``decision.final`` and ``decision.action_to_run``;
- every error answer raises :class:`~arbiter_client.errors.ApiError` with the
  problem's fields.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import httpx

from .errors import ApiError, TransportError, problem_from
from .models import Action, Decision, Receipt, ReceiptKey
from . import receipts as _receipts

DEFAULT_URL = "http://127.0.0.1:8080"
#: The longest single long-poll the server accepts.
MAX_POLL_SECONDS = 60

ActionLike = Union[Action, Mapping[str, Any], str]


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    json: Any = None
    headers: Optional[dict[str, str]] = None
    #: Safe to send again after a transport error or a 5xx (GETs, and POSTs with an idempotency key or idempotent by design).
    retry: bool = True
    timeout: Optional[float] = None


def _action(action: ActionLike, args: Optional[Mapping[str, Any]], confidence: Optional[float],
            signals: Optional[Mapping[str, Any]]) -> Action:
    if isinstance(action, str):
        a = Action(name=action)
    elif isinstance(action, Action):
        a = action.model_copy(deep=True)
    else:
        a = Action.model_validate(dict(action))
    if args is not None:
        a.args = dict(args)
    if confidence is not None:
        a.confidence = confidence
    if signals is not None:
        a.signals = dict(signals)
    return a


def _propose(action: Action, *, context: Any, trace_id: Optional[str], idempotency_key: str) -> _Request:
    body: dict[str, Any] = {"action": action.model_dump(exclude_none=True)}
    if context is not None:
        body["context"] = context
    if trace_id is not None:
        body["trace_id"] = trace_id
    return _Request("POST", "/v1/decisions", body, {"Idempotency-Key": idempotency_key})


def _poll(decision_id: str, wait: float) -> _Request:
    secs = max(0, min(int(wait), MAX_POLL_SECONDS))
    path = f"/v1/decisions/{decision_id}" + (f"?wait={secs}s" if secs else "")
    return _Request("GET", path, timeout=secs + 30)


def _id(decision: Union[Decision, str]) -> str:
    return decision.id if isinstance(decision, Decision) else decision


def _retry_after(resp: Optional[httpx.Response], attempt: int, base: float) -> float:
    if resp is not None:
        ra = resp.headers.get("retry-after")
        if ra is not None:
            try:
                return min(float(ra), 60.0)
            except ValueError:
                pass
    return float(min(base * 2.0**attempt, 30.0) * (0.5 + random.random() / 2))


def _read(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        raise ApiError(problem_from(resp.status_code, body))
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError as e:
        raise TransportError(f"{resp.request.method} {resp.request.url}: not JSON: {resp.text[:200]}") from e


def _retryable(resp: httpx.Response) -> bool:
    return resp.status_code == 429 or resp.status_code >= 500


class _Base:
    def __init__(self, url: Optional[str], key: Optional[str], retries: int, backoff: float,
                 project: Optional[str] = None) -> None:
        self.url = (url or os.environ.get("ARBITER_URL") or DEFAULT_URL).rstrip("/")
        self.key = key if key is not None else os.environ.get("ARBITER_KEY")
        if not self.key:
            raise ValueError("no API key: pass key= or set ARBITER_KEY (create one with `arbiter keys create`)")
        self.retries = retries
        self.backoff = backoff
        # the project every call acts in: the key's own unless named (a server admin may name any)
        self.project = project if project is not None else os.environ.get("ARBITER_PROJECT")
        self._headers = {"Authorization": f"Bearer {self.key}", "User-Agent": "arbiter-client-python/0.1"}
        if self.project:
            self._headers["Arbiter-Project"] = self.project


class Client(_Base):
    """A synchronous client. ``Client(url, key)``; both default to ``ARBITER_URL`` / ``ARBITER_KEY``.

    ``project`` (default ``ARBITER_PROJECT``) names the project every call acts in; without it, the key's own.
    """

    def __init__(self, url: Optional[str] = None, key: Optional[str] = None, *, timeout: float = 30.0,
                 retries: int = 4, backoff: float = 0.25, http: Optional[httpx.Client] = None,
                 project: Optional[str] = None) -> None:
        super().__init__(url, key, retries, backoff, project)
        self._http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _send(self, req: _Request) -> Any:
        last: Optional[BaseException] = None
        for attempt in range(self.retries + 1):
            resp: Optional[httpx.Response] = None
            try:
                resp = self._http.request(req.method, self.url + req.path, json=req.json,
                                          headers={**self._headers, **(req.headers or {})},
                                          timeout=req.timeout if req.timeout is not None else httpx.USE_CLIENT_DEFAULT)
                if not (req.retry and _retryable(resp)) or attempt == self.retries:
                    return _read(resp)
            except httpx.TransportError as e:
                last = e
                if not req.retry or attempt == self.retries:
                    raise TransportError(f"cannot reach Arbiter at {self.url}: {e}") from e
            time.sleep(_retry_after(resp, attempt, self.backoff))
        raise TransportError(f"cannot reach Arbiter at {self.url}: {last}")

    def propose(self, action: ActionLike, args: Optional[Mapping[str, Any]] = None, *,
                confidence: Optional[float] = None, signals: Optional[Mapping[str, Any]] = None,
                context: Any = None, trace_id: Optional[str] = None,
                idempotency_key: Optional[str] = None) -> Decision:
        """Propose an action; the answer may already be final (allow, deny) or wait for a person.

        Pass ``idempotency_key`` to make a retried *logical* call (after a crash, a
        resumed graph) find its first decision; without it one is generated and
        reused across this call's own retries.
        """
        a = _action(action, args, confidence, signals)
        key = idempotency_key or f"py-{uuid.uuid4()}"
        return Decision.model_validate(self._send(_propose(a, context=context, trace_id=trace_id,
                                                           idempotency_key=key)))

    def get(self, decision: Union[Decision, str]) -> Decision:
        """The decision as it is now."""
        return Decision.model_validate(self._send(_poll(_id(decision), 0)))

    def wait(self, decision: Union[Decision, str], *, timeout: Optional[float] = None,
             poll: float = MAX_POLL_SECONDS) -> Decision:
        """Wait until the decision is final (a reviewer answered, or the SLA fallback applied).

        ``timeout`` (seconds) bounds the whole wait; ``None`` waits as long as the
        decision's SLA and tiers take (the fallback always ends it).
        """
        if isinstance(decision, Decision) and decision.is_final:
            return decision
        deadline = None if timeout is None else time.monotonic() + timeout
        did = _id(decision)
        while True:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"decision {did} is not final after {timeout} s")
            d = Decision.model_validate(self._send(_poll(did, left)))
            if d.is_final:
                return d

    def decide(self, action: ActionLike, args: Optional[Mapping[str, Any]] = None, *,
               timeout: Optional[float] = None, **kw: Any) -> Decision:
        """``propose`` then ``wait``: the final decision."""
        return self.wait(self.propose(action, args, **kw), timeout=timeout)

    def withdraw(self, decision: Union[Decision, str], reason: str) -> Decision:
        """The agent no longer wants the action: the case ends, settled as ``withdrawn``."""
        return Decision.model_validate(self._send(_Request("POST", f"/v1/decisions/{_id(decision)}/withdraw",
                                                           {"reason": reason})))

    def record_outcome(self, decision: Union[Decision, str], correct: bool, *, cost: Optional[float] = None,
                       label: Optional[str] = None, note: Optional[str] = None) -> Decision:
        """Record what became of the action (was it the right thing to do?), for tuning and drift."""
        body = {k: v for k, v in {"correct": correct, "cost": cost, "label": label, "note": note}.items()
                if v is not None}
        return Decision.model_validate(self._send(_Request("POST", f"/v1/decisions/{_id(decision)}/outcome", body)))

    def record_result(self, decision: Union[Decision, str], content: Any, *, is_error: bool = False) -> Decision:
        """Keep what the tool returned on the decision (evidence for reviewers; cut at 16 KiB)."""
        return Decision.model_validate(self._send(_Request("POST", f"/v1/decisions/{_id(decision)}/result",
                                                           {"content": content, "is_error": is_error})))

    def receipt_keys(self) -> list[ReceiptKey]:
        """The published receipt keys (``GET /v1/receipts/keys``)."""
        return [ReceiptKey.model_validate(k) for k in self._send(_Request("GET", "/v1/receipts/keys"))["keys"]]

    def verify_receipt(self, receipt: Union[Decision, Receipt, Mapping[str, Any]], *,
                       args: Optional[Mapping[str, Any]] = None, allow_only: bool = True) -> Receipt:
        """Check a receipt against the server's published keys (and ``args``, when given); see ``receipts.verify``."""
        return _receipts.verify(receipt, self.receipt_keys(), args=args, allow_only=allow_only)


class AsyncClient(_Base):
    """An asyncio client with the same methods as :class:`Client`, as coroutines."""

    def __init__(self, url: Optional[str] = None, key: Optional[str] = None, *, timeout: float = 30.0,
                 retries: int = 4, backoff: float = 0.25, http: Optional[httpx.AsyncClient] = None,
                 project: Optional[str] = None) -> None:
        super().__init__(url, key, retries, backoff, project)
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _send(self, req: _Request) -> Any:
        last: Optional[BaseException] = None
        for attempt in range(self.retries + 1):
            resp: Optional[httpx.Response] = None
            try:
                resp = await self._http.request(
                    req.method, self.url + req.path, json=req.json, headers={**self._headers, **(req.headers or {})},
                    timeout=req.timeout if req.timeout is not None else httpx.USE_CLIENT_DEFAULT)
                if not (req.retry and _retryable(resp)) or attempt == self.retries:
                    return _read(resp)
            except httpx.TransportError as e:
                last = e
                if not req.retry or attempt == self.retries:
                    raise TransportError(f"cannot reach Arbiter at {self.url}: {e}") from e
            await asyncio.sleep(_retry_after(resp, attempt, self.backoff))
        raise TransportError(f"cannot reach Arbiter at {self.url}: {last}")

    async def propose(self, action: ActionLike, args: Optional[Mapping[str, Any]] = None, *,
                      confidence: Optional[float] = None, signals: Optional[Mapping[str, Any]] = None,
                      context: Any = None, trace_id: Optional[str] = None,
                      idempotency_key: Optional[str] = None) -> Decision:
        a = _action(action, args, confidence, signals)
        key = idempotency_key or f"py-{uuid.uuid4()}"
        return Decision.model_validate(await self._send(_propose(a, context=context, trace_id=trace_id,
                                                                 idempotency_key=key)))

    async def get(self, decision: Union[Decision, str]) -> Decision:
        return Decision.model_validate(await self._send(_poll(_id(decision), 0)))

    async def wait(self, decision: Union[Decision, str], *, timeout: Optional[float] = None,
                   poll: float = MAX_POLL_SECONDS) -> Decision:
        if isinstance(decision, Decision) and decision.is_final:
            return decision
        deadline = None if timeout is None else time.monotonic() + timeout
        did = _id(decision)
        while True:
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"decision {did} is not final after {timeout} s")
            d = Decision.model_validate(await self._send(_poll(did, left)))
            if d.is_final:
                return d

    async def decide(self, action: ActionLike, args: Optional[Mapping[str, Any]] = None, *,
                     timeout: Optional[float] = None, **kw: Any) -> Decision:
        return await self.wait(await self.propose(action, args, **kw), timeout=timeout)

    async def withdraw(self, decision: Union[Decision, str], reason: str) -> Decision:
        return Decision.model_validate(await self._send(
            _Request("POST", f"/v1/decisions/{_id(decision)}/withdraw", {"reason": reason})))

    async def record_outcome(self, decision: Union[Decision, str], correct: bool, *, cost: Optional[float] = None,
                             label: Optional[str] = None, note: Optional[str] = None) -> Decision:
        body = {k: v for k, v in {"correct": correct, "cost": cost, "label": label, "note": note}.items()
                if v is not None}
        return Decision.model_validate(await self._send(
            _Request("POST", f"/v1/decisions/{_id(decision)}/outcome", body)))

    async def record_result(self, decision: Union[Decision, str], content: Any, *,
                            is_error: bool = False) -> Decision:
        return Decision.model_validate(await self._send(
            _Request("POST", f"/v1/decisions/{_id(decision)}/result", {"content": content, "is_error": is_error})))

    async def receipt_keys(self) -> list[ReceiptKey]:
        body = await self._send(_Request("GET", "/v1/receipts/keys"))
        return [ReceiptKey.model_validate(k) for k in body["keys"]]

    async def verify_receipt(self, receipt: Union[Decision, Receipt, Mapping[str, Any]], *,
                             args: Optional[Mapping[str, Any]] = None, allow_only: bool = True) -> Receipt:
        return _receipts.verify(receipt, await self.receipt_keys(), args=args, allow_only=allow_only)
