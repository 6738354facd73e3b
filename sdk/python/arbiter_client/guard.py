"""``guard``: put any Python callable behind Arbiter.

    @guard(action="isolate_host", confidence=lambda args: args.pop("confidence", None))
    def isolate_host(host: str, mode: str = "full") -> str:
        ...

    isolate_host(host="web-17")   # allow: runs; deny: raises Denied; escalate: waits, then runs

Each call proposes the action (its arguments, by parameter name, are the
action's ``args``), waits for the final verdict, and runs the function with
the arguments the verdict allows: a reviewer's modification replaces them.
What the function returns is kept on the decision as evidence. Works for
plain and ``async def`` functions (an async function needs an
:class:`~arbiter_client.AsyncClient`, or none to build one from the
environment).
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Awaitable, Callable, Mapping, Optional, TypeVar, Union, cast

from .client import AsyncClient, Client
from .errors import ArbiterError, Denied
from .models import Decision

F = TypeVar("F", bound=Callable[..., Any])
ArgsOrCallable = Union[float, None, Callable[[dict[str, Any]], Optional[float]]]


def _bound_args(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    sig = inspect.signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        else:
            out[name] = value
    return out


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


class _Spec:
    def __init__(self, fn: Callable[..., Any], action: Optional[str], args_from: Optional[Callable[..., Mapping[str, Any]]],
                 confidence: ArgsOrCallable, signals: Any, context: Any, timeout: Optional[float],
                 record_result: bool, idempotency_key: Optional[Callable[[dict[str, Any]], str]]) -> None:
        self.fn = fn
        self.action = action or fn.__name__
        self.args_from = args_from
        self.confidence = confidence
        self.signals = signals
        self.context = context
        self.timeout = timeout
        self.record_result = record_result
        self.idempotency_key = idempotency_key
        self._client: Optional[Client] = None
        self._async_client: Optional[AsyncClient] = None

    def default_client(self) -> Client:
        """One client from the environment for all calls of this function (made on first use)."""
        if self._client is None:
            self._client = Client()
        return self._client

    def default_async_client(self) -> AsyncClient:
        """One async client from the environment for all calls of this function (made on first use)."""
        if self._async_client is None:
            self._async_client = AsyncClient()
        return self._async_client

    def proposal(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        call_args = dict(self.args_from(*args, **kwargs)) if self.args_from else _bound_args(self.fn, args, kwargs)
        conf = self.confidence(dict(call_args)) if callable(self.confidence) else self.confidence
        signals = self.signals(call_args) if callable(self.signals) else self.signals
        context = self.context(call_args) if callable(self.context) else self.context
        key = self.idempotency_key(dict(call_args)) if self.idempotency_key else None
        return {"action": self.action, "args": _jsonable(call_args), "confidence": conf, "signals": signals,
                "context": context, "idempotency_key": key}

    def arguments(self, d: Decision, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """How to call the function for an allowed decision: as called, or with the reviewer's arguments."""
        if d.final is not None and d.final.action is not None:
            return (), dict(d.final.action.args)
        return args, kwargs


def guard(action: Optional[str] = None, *, client: Union[Client, AsyncClient, None] = None,
          args_from: Optional[Callable[..., Mapping[str, Any]]] = None, confidence: ArgsOrCallable = None,
          signals: Any = None, context: Any = None, timeout: Optional[float] = None,
          record_result: bool = True,
          idempotency_key: Optional[Callable[[dict[str, Any]], str]] = None) -> Callable[[F], F]:
    """Decorate a function so that each call goes through Arbiter first.

    - ``action``: the action class (default: the function's name);
    - ``args_from(*args, **kwargs) -> dict``: the action's ``args`` (default: the call's
      arguments by parameter name; then a reviewer's modified arguments are passed back
      to the function as keyword arguments, so keep them named like its parameters);
    - ``confidence``: a number, or ``f(args) -> number`` (see ``arbiter_client.confidence``);
    - ``signals``, ``context``: values or ``f(args) -> value``;
    - ``timeout``: how long to wait for a person, in seconds (default: until the SLA
      fallback decides); ``TimeoutError`` after it;
    - ``record_result``: keep what the function returned on the decision;
    - ``idempotency_key(args) -> str``: the same key finds the same decision, so a call
      retried after a crash waits for the first decision instead of making a second one
      (default: a fresh key per call).

    Raises :class:`~arbiter_client.errors.Denied` when the final verdict is deny.
    """

    def wrap(fn: F) -> F:
        return guarded(fn, action=action, client=client, args_from=args_from, confidence=confidence,
                       signals=signals, context=context, timeout=timeout, record_result=record_result,
                       idempotency_key=idempotency_key)

    return wrap


def guarded(fn: F, *, action: Optional[str] = None, client: Union[Client, AsyncClient, None] = None,
            args_from: Optional[Callable[..., Mapping[str, Any]]] = None, confidence: ArgsOrCallable = None,
            signals: Any = None, context: Any = None, timeout: Optional[float] = None,
            record_result: bool = True, idempotency_key: Optional[Callable[[dict[str, Any]], str]] = None) -> F:
    """``guard`` as a function: ``safe_refund = guarded(refund, action="refund", client=c)``."""
    spec = _Spec(fn, action, args_from, confidence, signals, context, timeout, record_result, idempotency_key)
    if inspect.iscoroutinefunction(fn):
        if client is not None and not isinstance(client, AsyncClient):
            raise TypeError(f"{fn.__name__} is async: guard it with an AsyncClient")

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            c = client if isinstance(client, AsyncClient) else spec.default_async_client()
            p = spec.proposal(args, kwargs)
            d = await c.wait(await c.propose(p["action"], p["args"], confidence=p["confidence"],
                                             signals=p["signals"], context=p["context"],
                                             idempotency_key=p["idempotency_key"]), timeout=spec.timeout)
            if not d.allowed:
                raise Denied(d)
            a, kw = spec.arguments(d, args, kwargs)
            try:
                result = await cast(Callable[..., Awaitable[Any]], fn)(*a, **kw)
            except Exception as e:
                if spec.record_result:
                    await _record_async(c, d, repr(e), True)
                raise
            if spec.record_result:
                await _record_async(c, d, _jsonable(result), False)
            return result

        return cast(F, run_async)

    if client is not None and not isinstance(client, Client):
        raise TypeError(f"{fn.__name__} is not async: guard it with a Client")

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        c = client if isinstance(client, Client) else spec.default_client()
        p = spec.proposal(args, kwargs)
        d = c.wait(c.propose(p["action"], p["args"], confidence=p["confidence"], signals=p["signals"],
                             context=p["context"], idempotency_key=p["idempotency_key"]), timeout=spec.timeout)
        if not d.allowed:
            raise Denied(d)
        a, kw = spec.arguments(d, args, kwargs)
        try:
            result = fn(*a, **kw)
        except Exception as e:
            if spec.record_result:
                _record(c, d, repr(e), True)
            raise
        if spec.record_result:
            _record(c, d, _jsonable(result), False)
        return result

    return cast(F, run)


def _record(c: Client, d: Decision, content: Any, is_error: bool) -> None:
    try:
        c.record_result(d, content, is_error=is_error)
    except ArbiterError:  # evidence only: never fail the call that already ran
        pass


async def _record_async(c: AsyncClient, d: Decision, content: Any, is_error: bool) -> None:
    try:
        await c.record_result(d, content, is_error=is_error)
    except ArbiterError:
        pass
