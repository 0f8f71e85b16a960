"""JSON as JavaScript writes it: numbers, escapes and what is refused, byte for byte."""

import pytest

from dlq_operator.jsjson import encode_utf8, parse, stringify


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (100.0, "100"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e22, "1.5e+22"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-10, "-2.5e-10"),
        (123456.789, "123456.789"),
        (5e-324, "5e-324"),
        (float("nan"), "null"),
        (float("inf"), "null"),
        (2**64, "18446744073709551616"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, expected: str) -> None:
    assert stringify(value) == expected.encode()


def test_strings_are_escaped_as_javascript_escapes_them() -> None:
    text = '"\\/\b\f\n\r\t\x00\x1f\x7f\u2028é😀\ud800'

    assert stringify(text) == (
        '"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\u2028é😀\\ud800"'.encode()
    )


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(TypeError):
        stringify({"when": object()})
    with pytest.raises(TypeError):
        stringify({1: "a"})


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_parse_refuses_what_json_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not valid JSON"):
        parse(text)


def test_parse_reads_what_stringify_wrote() -> None:
    value = {"n": 1e-7, "big": 2**64, "text": "é😀", "list": [None, True, 0.5]}

    assert parse(stringify(value).decode()) == value


def test_encode_utf8_writes_a_lone_surrogate_as_buffer_from_does() -> None:
    assert encode_utf8("k\ud800é") == "k\ufffdé".encode()
