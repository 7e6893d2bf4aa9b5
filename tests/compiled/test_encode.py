"""``hub.compiled.encode``: orjson's bytes only where they equal the standard library's, else the standard
library's bytes or exception (the audit digest is over the canonical bytes; the response must not change)."""

from __future__ import annotations

import enum
import json
import math
import random
import struct
from datetime import date
from typing import Any

import pytest
from starlette.responses import JSONResponse

from hub.audit.entry import canonical
from hub.compiled.encode import AnswerResponse, canonical_answer, encode_answer


def _std(obj: Any, sort_keys: bool = False) -> bytes:
    return json.dumps(obj, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _same(obj: Any) -> None:
    assert encode_answer(obj) == _std(obj)
    assert canonical_answer(obj) == canonical(obj)
    assert AnswerResponse(obj).body == JSONResponse(obj).body


def test_every_code_point_is_written_as_the_standard_encoder_writes_it() -> None:
    points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000, 97), 0x10FFFF]
    chunk = 4096
    for i in range(0, len(points), chunk):
        text = "".join(map(chr, points[i : i + chunk]))
        _same({"s": text, "k" + text[:50]: [text[::-1]]})
    for c in range(0x80):
        _same(chr(c))
    for lone in ("\ud800", "a\udfff"):  # lone surrogates: the standard encoder's own error
        with pytest.raises(UnicodeEncodeError):
            canonical(lone)
        with pytest.raises(UnicodeEncodeError):
            canonical_answer(lone)


def test_floats_are_written_as_the_standard_encoder_writes_them() -> None:
    rnd = random.Random(16)
    floats = [0.0, -0.0, 1e-4, 9.99e-5, 1e-5, 1e15, 1e16, 1e21, 1e22, 5e-324, 1.7976931348623157e308, 2.5, 1234.56]
    for _ in range(20_000):
        f = struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0]
        if math.isfinite(f):
            floats.append(f)
        floats += [
            10 ** rnd.uniform(-8, 25),
            -(10 ** rnd.uniform(-8, 25)),
            round(rnd.uniform(0, 1e6), rnd.randint(0, 4)),
        ]
    for i in range(0, len(floats), 500):
        _same({"xs": floats[i : i + 500]})
        for f in floats[i : i + 20]:
            _same(f)
    assert encode_answer([1.5e-05]) == b"[1.5e-05]"  # orjson would write 0.000015: the standard encoder answers


def test_keys_sorted_as_the_canonical_encoding_sorts_them() -> None:
    obj = {"b": 1, "a": {"z": None, "Z": True, "é": False, "\uffff": 1, "\U0001f600": [2, "x"], "": 0}, "aa": []}
    _same(obj)
    assert canonical_answer(obj) == canonical(obj) != encode_answer(obj)


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    "obj",
    [
        {1: "x"},  # a non-string key: converted by the standard encoder
        {"n": 2**70},  # beyond 64 bits
        {"n": Level.ONE, "t": Text("a")},  # subclasses of int and str
        ("a", 1, [None]),
        {"d": date(2026, 12, 2)},  # not JSON: the standard encoder's TypeError
        {"x": {1, 2}},
    ],
)
def test_anything_else_gets_the_standard_encoders_bytes_or_error(obj: Any) -> None:
    try:
        expected: bytes | type[Exception] = _std(obj)
    except Exception as exc:  # noqa: BLE001
        expected = type(exc)
    for sort in (False, True):
        if isinstance(expected, bytes):
            assert encode_answer(obj, sort_keys=sort) == _std(obj, sort)
        else:
            with pytest.raises(expected):
                encode_answer(obj, sort_keys=sort)
    if isinstance(expected, bytes):
        assert AnswerResponse(obj).body == JSONResponse(obj).body
    else:
        with pytest.raises(expected):
            AnswerResponse(obj)


def test_what_no_graphql_answer_holds_is_where_the_two_differ() -> None:
    """A GraphQL answer's leaves are coerced by their types (``Float`` refuses what is not finite; an enum value
    is its name): these never reach the encoder from an execution, and are the documented differences."""
    assert encode_answer({"c": Colour.RED}) == b'{"c":"red"}'  # json.dumps: TypeError
    assert encode_answer([math.nan, math.inf]) == b"[null,null]"  # json.dumps: NaN, Infinity


def test_strings_that_look_like_exponents_keep_the_fast_path() -> None:
    """Codes such as a USCC (``91330100MA2E...``) hold digits followed by ``E``: only a signed exponent counts."""
    obj = {"uscc": "91330100MA2E3K4L5X", "plate": "浙A1E234", "n": [1, 2.5, "3e5"], "x": 0.001}
    assert encode_answer(obj) == _std(obj)
    import hub.compiled.encode as encode

    assert encode._fast(obj, 0) is not None
    assert encode._fast({"mail": "e-mail"}, 0) is None  # needlessly, but the same bytes
    assert encode._fast({"x": 1.5e-05}, 0) is None and encode._fast([1e-4, 1e16], 0) is None
    assert encode._fast(1e16, 0) is None and encode._fast(-2e-7, 0) is None


def test_a_response_after_its_canonical_data_checks_only_the_rest() -> None:
    """The canonical check of ``data`` stands for the response's ``data`` (the same object, unchanged); the rest
    of the body is still checked, and anything else (another answer in between) checks the whole body."""
    data = {"people": [{"v": 2.5, "s": "x"}]}
    canonical_answer(data)
    body = {"data": data, "extensions": {"small": 1.5e-05}}  # the rest needs the standard encoder
    assert (
        AnswerResponse(body).body
        == JSONResponse(body).body
        == b'{"data":{"people":[{"v":2.5,"s":"x"}]},' + (b'"extensions":{"small":1.5e-05}}')
    )
    canonical_answer(data)
    canonical_answer({"other": 1})  # another request's digest in between
    odd = {"data": {"n": [1e-5]}}
    assert AnswerResponse(odd).body == JSONResponse(odd).body
    canonical_answer({"n": [1e-5]})  # not clean: nothing is remembered
    assert AnswerResponse({"data": {"n": [1e-5]}}).body == b'{"data":{"n":[1e-05]}}'
    canonical_answer(data)
    assert (
        AnswerResponse({"data": data, "extensions": {"k": "v"}}).body
        == JSONResponse({"data": data, "extensions": {"k": "v"}}).body
    )
