"""The one guarded upstream call: circuit breaker, deadline and error mapping, used by every source.

Like httpx's ``map_httpcore_exceptions``, one context manager translates the lower layer's failures into the
hub's own: whatever a department's database, a subgraph or another region's hub does wrong, the caller sees an
``UpstreamUnavailable`` with a short fixed message, the breaker counts it, and the detail stays in our log::

    async with guarded(self.breaker, self.timeout, f"department {code}"):
        rows = await ...

* the breaker refuses (open, or a half-open trial that failed): ``<who> is unavailable (circuit open)``;
* the whole call (connect, send, read all) takes longer than ``timeout``: ``<who> did not answer within <t>s``;
* one of ``failures`` is raised: ``<who> is unavailable`` (the original chained, its class, and with
  ``detail`` its message, logged);
* the call is cancelled or fails otherwise: neither a success nor a failure for the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
import httpx

from hub.errors import UpstreamUnavailable
from hub.upstream.breaker import CircuitBreaker

log = logging.getLogger("hub.sources")

# What a peer reached over HTTP (a subgraph, another region's hub) can do wrong: transport errors, an answer
# that is too large, not JSON or not shaped as asked (ValueError, KeyError, TypeError), or an error it reports.
# ``OSError``/``EOFError`` and ``asyncio.LimitOverrunError``: the connection, for hub.upstream.http1.
HTTP_FAILURES: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    OSError,
    EOFError,
    asyncio.LimitOverrunError,
    ValueError,
    KeyError,
    TypeError,
    UpstreamUnavailable,
)


@asynccontextmanager
async def guarded(
    breaker: CircuitBreaker,
    timeout: float,
    who: str,
    *,
    failures: tuple[type[Exception], ...] = (Exception,),
    detail: bool = True,
) -> AsyncIterator[None]:
    """Admit the call through ``breaker``, bound it by ``timeout`` seconds and map its failures (above).
    ``detail=False`` logs only the error's class (a database error's text can hold a statement's parameters)."""
    started = time.perf_counter()
    if not await breaker.admit(timeout):
        _observe(breaker, "circuit_open", started)
        raise UpstreamUnavailable(f"{who} is unavailable (circuit open)")
    with outcome(breaker, timeout, who, started, failures=failures, detail=detail):
        with anyio.fail_after(timeout):  # the whole call, not each read
            yield


@contextmanager
def outcome(
    breaker: CircuitBreaker,
    timeout: float,
    who: str,
    started: float,
    *,
    failures: tuple[type[Exception], ...] = (Exception,),
    detail: bool = True,
    passes: tuple[type[Exception], ...] = (),
) -> Iterator[None]:
    """The admitted call's outcome to the breaker and the metrics, and its failure mapped (above): the part of
    ``guarded`` after admission, also used by a call that keeps its own deadline (the SQL source's inline read,
    which raises ``TimeoutError`` itself). ``passes``: exceptions that leave untouched, counted as nothing."""
    try:
        yield
    except passes:
        raise
    except TimeoutError:
        breaker.failure()
        _observe(breaker, "timeout", started)
        raise UpstreamUnavailable(f"{who} did not answer within {timeout}s") from None
    except failures as exc:
        breaker.failure()
        _observe(breaker, "failed", started)
        if detail:
            log.warning("%s failed: %s: %s", who, exc.__class__.__name__, exc)
        else:
            log.warning("%s failed: %s", who, exc.__class__.__name__)
        raise UpstreamUnavailable(f"{who} is unavailable") from exc
    except BaseException:  # cancelled (the request went away), or a bug: it proves nothing about the upstream
        breaker.abandoned()
        raise
    breaker.success()
    _observe(breaker, "ok", started)


def _observe(breaker: CircuitBreaker, outcome: str, started: float) -> None:
    """The call's outcome and duration to whoever watches the breaker (the metrics, hub/metrics.py)."""
    if breaker.observe is not None:
        breaker.observe(outcome, time.perf_counter() - started)
