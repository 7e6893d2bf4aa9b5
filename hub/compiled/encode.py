"""JSON of an answer with ``orjson``, byte for byte what the standard library's encoder gives, or that encoder's.

A 1,000-household answer is about 1.8 MB of JSON, encoded twice per request: once canonically for the audit
entry's result digest (``hub.audit.entry.canonical``: sorted keys) and once for the response (Starlette's
``JSONResponse.render``). ``json.dumps`` spends about 45 ms on each; ``orjson`` about a tenth of that (issue 16).

The digest must stay a digest of exactly the canonical bytes, and the response exactly what it was, so orjson's
output is used only where it provably equals ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``:

* only ``dict`` (with ``str`` keys), ``list``, ``tuple``, ``str``, ``int`` (64-bit), ``float``, ``bool`` and None;
  anything else (a subclass, a dataclass, a date, a non-string key, a larger int, a lone surrogate) makes orjson
  raise, and the standard encoder then answers (or raises) as it always did;
* strings: both escape exactly ``"``, ``\\`` and the control characters, with the same short forms and ``\\u00xx``
  (tests/compiled/test_encode.py checks every code point), and write everything else as UTF-8;
* floats: both write the shortest repr, except that Python writes an exponent (``1e-05``, ``1e+16``) where orjson
  writes ``0.00001`` or ``1e-5``. Every float whose forms differ is below 1e-4 in magnitude or needs an exponent,
  so orjson's output then holds ``0.0000`` or a signed exponent (``e+``, ``e-``: orjson always writes the sign):
  any such bytes (a float's, or the same text inside a string, such as "e-mail") send the value to the standard
  encoder;
* what orjson writes and the standard encoder refuses or writes otherwise, and which cannot be seen in the bytes:
  non-finite floats (orjson: ``null``; Python: ``NaN``, or an error where ``allow_nan`` is off) and ``enum.Enum``
  or ``uuid.UUID`` members (orjson: their value; Python: an error). The callers encode only executed GraphQL
  answers, which hold none of them: every leaf is coerced by its type (``coerce_output_value``, graphql-core's and
  the compiled path's alike), ``Float`` refuses what is not finite and an enum value is its name.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse

# orjson's float forms that may differ from Python's: an exponent (always signed: ``1e+16``, ``1.5e-5``) or a small
# number written out (``0.00001``). The same bytes inside a string send it to the standard encoder, needlessly.
# ``+`` alone is looked for (a one-byte search is a memchr; two-byte ones take milliseconds in 2 MB of JSON).
_DIFFERS = (b"+", b"e-", b"0.0000")
_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _refuse(obj: Any) -> Any:
    raise TypeError(type(obj).__name__)  # not a plain JSON value: the standard encoder decides


def _dumps(obj: Any, options: int) -> bytes | None:
    try:
        return orjson.dumps(obj, default=_refuse, option=_OPTIONS | options)
    except TypeError:  # orjson.JSONEncodeError
        return None


def _same(out: bytes) -> bool:
    return not any(d in out for d in _DIFFERS)


def _fast(obj: Any, options: int) -> bytes | None:
    out = _dumps(obj, options)
    return out if out is not None and _same(out) else None


def encode_answer(obj: Any, *, sort_keys: bool = False) -> bytes:
    """``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys).encode()``, the same
    bytes and the same exceptions, for a GraphQL answer (the module's docstring says why that restriction)."""
    found = _fast(obj, orjson.OPT_SORT_KEYS if sort_keys else 0)
    if found is not None:
        return found
    return json.dumps(obj, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_answer(data: Any) -> bytes:
    """``hub.audit.entry.canonical(data)`` for an answer's ``data``."""
    return encode_answer(data, sort_keys=True)


class AnswerResponse(JSONResponse):
    """``JSONResponse`` for a GraphQL answer: the same bytes (``allow_nan=False`` kept: a non-finite float cannot
    reach the fast path, see the module's docstring, and the standard encoder still refuses it)."""

    def render(self, content: Any) -> bytes:
        found = _fast(content, 0)
        return found if found is not None else super().render(content)
