"""What a plain (unquoted) YAML scalar means, and whether that depends on the YAML version.

YAML 1.1 (PyYAML, older tools) and YAML 1.2 (its core schema) read some plain scalars
differently: `NO` is false in 1.1 and text in 1.2, `0755` is 493 in 1.1 and 755 in 1.2, `1:30` is
90 in 1.1 (base 60). A policy that means one thing to gcd and another to the operator's editor,
linter or templating tool is a policy that deletes the wrong images, so gcd takes a plain scalar
only when both versions agree on it and it is written in plain decimal; everything else is
refused with the fix. Pure: text in, meaning out; the YAML parsing is `gcd.config`'s.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal

Scalar = None | bool | int | float | str
Kind = Literal["null", "bool", "int", "float", "date", "timestamp", "merge", "value", "text"]

# YAML 1.1 as PyYAML resolves it (yaml/resolver.py), plus y/Y/n/N, which the YAML 1.1 type
# repository (yaml.org/type/bool.html) also makes booleans and other YAML 1.1 loaders honour.
_BOOL11 = re.compile(
    r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
)
_TRUE11 = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_FLOAT11 = re.compile(
    r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
    r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*"
    r"|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN)"
)
_INT11 = re.compile(
    r"[-+]?0b[0-1_]+"
    r"|[-+]?0[0-7_]+"
    r"|[-+]?(?:0|[1-9][0-9_]*)"
    r"|[-+]?0x[0-9a-fA-F_]+"
    r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
)
_NULL = re.compile(r"~|null|Null|NULL|")  # the same in both versions
_DATE11 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP11 = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?"
)

# The YAML 1.2 core schema (YAML 1.2.2, 10.3.2).
_BOOL12 = re.compile(r"true|True|TRUE|false|False|FALSE")
_DECIMAL12 = re.compile(r"[-+]?[0-9]+")
_OCTAL12 = re.compile(r"0o[0-7]+")
_HEX12 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT12 = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF12 = re.compile(r"[-+]?(?:\.inf|\.Inf|\.INF)")
_NAN12 = re.compile(r"\.nan|\.NaN|\.NAN")

# What gcd accepts as a plain whole number: decimal, no leading zero, no underscore.
_PLAIN_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")


@dataclass(frozen=True, slots=True)
class Reading:
    """What one YAML version makes of a plain scalar."""

    kind: Kind
    value: Scalar  # the text itself for date, timestamp, merge and value: gcd never uses them
    phrase: str  # "the octal number 493", for messages


@dataclass(frozen=True, slots=True)
class Plain:
    """A plain scalar as YAML 1.1 and YAML 1.2 read it."""

    text: str
    yaml11: Reading
    yaml12: Reading

    @property
    def agreed(self) -> bool:
        one, two = self.yaml11, self.yaml12
        if one.kind != two.kind or (one.kind == "int" and None in (one.value, two.value)):
            return False  # a whole number too long to read is nothing to agree on
        if isinstance(one.value, float) and isinstance(two.value, float):
            return one.value == two.value or (math.isnan(one.value) and math.isnan(two.value))
        return one.value == two.value

    @property
    def refused(self) -> bool:
        """True when the versions disagree, or a whole number is not in plain decimal (`0x10`
        is 16 in both, but nobody reviewing a policy should have to convert it)."""
        if not self.agreed:
            return True
        return self.yaml12.kind == "int" and _PLAIN_DECIMAL.fullmatch(self.text) is None

    @property
    def value(self) -> Scalar:
        """The meaning gcd uses (YAML 1.2's, equal to YAML 1.1's when not `refused`)."""
        return self.yaml12.value

    def why(self) -> str:
        """`YAML 1.1 reads NO as the boolean false, YAML 1.2 as text`."""
        text = excerpt(self.text)
        if self.yaml11.phrase == self.yaml12.phrase:
            return f"YAML reads {text} as {self.yaml12.phrase}"
        one, two = self.yaml11.phrase, self.yaml12.phrase
        return f"YAML 1.1 reads {text} as {one}, YAML 1.2 as {two}"

    def message(self) -> str:
        """What each version reads, and the fix: for a refused scalar outside label rules."""
        text = excerpt(self.text)
        if self.yaml11.phrase == self.yaml12.phrase:
            sentence = f"{text} is {self.yaml12.phrase} in YAML 1.1 and 1.2"
        else:
            sentence = (
                f"{text} is {self.yaml11.phrase} in YAML 1.1 and {self.yaml12.phrase} in YAML 1.2"
            )
        return f"{sentence}: {self._fix()}"

    def _fix(self) -> str:
        text = quoted(self.text)
        readings = (self.yaml11, self.yaml12)
        kinds = {reading.kind for reading in readings}
        boolean = next((r.value for r in readings if r.kind == "bool"), None)
        if boolean is not None:
            return f"quote it ({text}) for the text, or write {'true' if boolean else 'false'}"
        # Base 60 and dates are nothing gcd could want as a number: only the text makes sense.
        if ":" in self.text or kinds & {"date", "timestamp", "merge", "value"}:
            return f"quote it ({text})"
        if kinds & {"int", "float"}:
            return f"write the number in plain decimal, or quote it ({text}) for the text"
        return f"quote it ({text})"


EXCERPT = 80
"""The most characters of a found value a message quotes: a 50 MB scalar is not echoed."""


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """`text`, or its first `limit` characters and `…(N characters)` when it is longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} characters)"


def quoted(text: str) -> str:
    """`"1.10"`: the text as a double-quoted YAML scalar (JSON's escapes are YAML's too); a
    long text is cut to an excerpt (`excerpt`), after the closing quote."""
    if len(text) > EXCERPT:
        return json.dumps(text[:EXCERPT], ensure_ascii=False) + f"…({len(text)} characters)"
    return json.dumps(text, ensure_ascii=False)


def read_plain(text: str) -> Plain:
    """How YAML 1.1 and the YAML 1.2 core schema read the plain scalar `text`."""
    return Plain(text, _yaml11(text), _yaml12(text))


def _yaml11(text: str) -> Reading:
    if _BOOL11.fullmatch(text):
        value = text in _TRUE11
        return Reading("bool", value, f"the boolean {'true' if value else 'false'}")
    if _FLOAT11.fullmatch(text):
        return _float11(text)
    if _INT11.fullmatch(text):
        return _int11(text)
    if text == "<<":
        return Reading("merge", text, "a merge key")
    if _NULL.fullmatch(text):
        return Reading("null", None, "no value")
    if _DATE11.fullmatch(text):
        return Reading("date", text, "a date")
    if _TIMESTAMP11.fullmatch(text):
        return Reading("timestamp", text, "a timestamp")
    if text == "=":
        return Reading("value", text, "a value key")
    return Reading("text", text, "text")


def _signed(text: str) -> tuple[int, str]:
    return (-1 if text[0] == "-" else 1), text.lstrip("+-")


LONGEST_NUMBER = 100
"""Digits of a whole number read at all: no count in a policy needs more, and base 60 over
a megabyte of `1:2:3…` would take minutes of big-number arithmetic."""


def _int11(text: str) -> Reading:
    if len(text) > LONGEST_NUMBER:
        return Reading("int", None, "a number too long to read")
    sign, digits = _signed(text.replace("_", ""))
    if ":" in digits:
        head, *rest = digits.split(":")
        reading = _whole(1, head, 10, "the base-60 number")
        if not isinstance(reading.value, int):
            return reading
        total = reading.value
        for part in rest:
            total = total * 60 + int(part)
        return _number("int", sign * total, "the base-60 number")
    if digits.startswith("0b"):
        return _whole(sign, digits[2:], 2, "the binary number")
    if digits.startswith("0x"):
        return _whole(sign, digits[2:], 16, "the hexadecimal number")
    if digits.startswith("0") and digits != "0":
        return _whole(sign, digits, 8, "the octal number")
    return _whole(sign, digits, 10, "the number")


def _float11(text: str) -> Reading:
    sign, digits = _signed(text.replace("_", "").lower())
    if digits == ".inf":
        return _number("float", sign * math.inf, "the number")
    if digits == ".nan":
        return _number("float", math.nan, "the number")
    if ":" in digits:
        total = 0.0
        for part in digits.split(":"):
            total = total * 60 + float(part)
        return _number("float", sign * total, "the base-60 number")
    return _number("float", sign * float(digits), "the number")


def _yaml12(text: str) -> Reading:
    if _NULL.fullmatch(text):
        return Reading("null", None, "no value")
    if _BOOL12.fullmatch(text):
        value = text.lower() == "true"
        return Reading("bool", value, f"the boolean {'true' if value else 'false'}")
    if _DECIMAL12.fullmatch(text):
        sign, digits = _signed(text)
        return _whole(sign, digits, 10, "the number")
    if _OCTAL12.fullmatch(text):
        return _whole(1, text[2:], 8, "the octal number")
    if _HEX12.fullmatch(text):
        return _whole(1, text[2:], 16, "the hexadecimal number")
    if _INF12.fullmatch(text):
        return _number("float", -math.inf if text[0] == "-" else math.inf, "the number")
    if _NAN12.fullmatch(text):
        return _number("float", math.nan, "the number")
    if _FLOAT12.fullmatch(text):
        return _number("float", float(text), "the number")
    return Reading("text", text, "text")


def _whole(sign: int, digits: str, base: int, phrase: str) -> Reading:
    if len(digits) > LONGEST_NUMBER:
        return Reading("int", None, "a number too long to read")
    try:
        value = sign * int(digits or "0", base)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return Reading("int", None, "a number too long to read")
    return _number("int", value, phrase)


def _number(kind: Literal["int", "float"], value: int | float, phrase: str) -> Reading:
    if isinstance(value, float) and math.isinf(value):
        return Reading(kind, value, f"{phrase} {'minus ' if value < 0 else ''}infinity")
    if isinstance(value, float) and math.isnan(value):
        return Reading(kind, value, "not a number (NaN)")
    return Reading(kind, value, f"{phrase} {excerpt(repr(value))}")
