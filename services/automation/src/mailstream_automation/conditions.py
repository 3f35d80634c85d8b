"""One condition of a rule: what it may say (validated when the rule is saved) and whether a message meets it.

Semantics, as documented in the API:
- Text comparisons (`equals`, `contains`, `starts_with`, `ends_with`, and their `not_` forms) ignore case
  (Unicode case folding). `matches` is a regular expression searched anywhere in the text, also case-insensitive
  (write `(?-i)` to make it case-sensitive, `^...$` to anchor it); it runs under a time budget and a pattern that
  exceeds it makes the condition false with the reason recorded.
- A value may be one string or a list of strings: a positive operator holds when any of them matches.
- Fields with several values (`to`, `cc`, `header:<Name>` when the header repeats) hold for a positive operator
  when any value matches; the negative operators (`not_equals`, `not_contains`) hold when none does. A missing
  header therefore fails `contains` and passes `not_contains`.
- `is` compares a boolean field with true/false; `within_hours`/`outside_hours` test `received_at` against a
  business-hours window (see hours.py).
"""

import functools
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WithJsonSchema, field_validator

from .facts import Facts
from .hours import BusinessHours, describe_local

MAX_PATTERN_LENGTH = 500
MAX_TEXT_VALUE_LENGTH = 1000
MAX_VALUES = 100
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,100}$")  # RFC 5322 field name: printable ASCII except ':'
HEADER_PREFIX = "header:"


class Kind(StrEnum):
    TEXT = "text"
    BOOLEAN = "boolean"
    TIME = "time"


FIELDS: dict[str, Kind] = {
    "from": Kind.TEXT,
    "from_name": Kind.TEXT,
    "from_domain": Kind.TEXT,
    "to": Kind.TEXT,
    "cc": Kind.TEXT,
    "subject": Kind.TEXT,
    "body": Kind.TEXT,
    "authentication.spf": Kind.TEXT,
    "authentication.dkim": Kind.TEXT,
    "authentication.dmarc": Kind.TEXT,
    "has_attachment": Kind.BOOLEAN,
    "is_first_message": Kind.BOOLEAN,
    "received_at": Kind.TIME,
}
"""Every field a condition may name, besides `header:<Name>` (text)."""

POSITIVE_TEXT_OPERATORS = ("equals", "contains", "starts_with", "ends_with", "matches")
NEGATED = {"not_equals": "equals", "not_contains": "contains"}
OPERATORS: dict[Kind, tuple[str, ...]] = {
    Kind.TEXT: (*POSITIVE_TEXT_OPERATORS, *NEGATED),
    Kind.BOOLEAN: ("is",),
    Kind.TIME: ("within_hours", "outside_hours"),
}
_VERBS = {
    "equals": ("equals", "does not equal"),
    "contains": ("contains", "does not contain"),
    "starts_with": ("starts with", "does not start with"),
    "ends_with": ("ends with", "does not end with"),
    "matches": ("matches", "does not match"),
}


def field_kind(name: str) -> Kind | None:
    if name.startswith(HEADER_PREFIX):
        return Kind.TEXT if _HEADER_NAME.match(name[len(HEADER_PREFIX) :]) else None
    return FIELDS.get(name)


@functools.lru_cache(maxsize=2048)
def compile_pattern(pattern: str) -> "regex.Pattern[str]":
    """Compile once per process; raises ValueError with the reason for a pattern we refuse."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return regex.compile(pattern, regex.IGNORECASE)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


ALL_OPERATORS = tuple(dict.fromkeys(op for ops in OPERATORS.values() for op in ops))
_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "string", "maxLength": MAX_TEXT_VALUE_LENGTH},
        {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_VALUES},
        {"type": "boolean"},
        BusinessHours.model_json_schema(by_alias=True),
    ]
}


class Condition(BaseModel):
    """`{"field", "operator", "value"}`; errors name the part that is wrong (conditions[i].field/operator/value)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(
        description="from, from_name, from_domain, to, cc, subject, body, header:<Name>, has_attachment, "
        "is_first_message, authentication.spf|dkim|dmarc, received_at",
        examples=["subject"],
    )
    operator: Annotated[str, WithJsonSchema({"type": "string", "enum": list(ALL_OPERATORS)})] = Field(
        description="Text: equals, not_equals, contains, not_contains, starts_with, ends_with, matches (regex). "
        "Booleans: is. received_at: within_hours, outside_hours.",
        examples=["contains"],
    )
    value: Annotated[Any, WithJsonSchema(_VALUE_SCHEMA)] = Field(
        description="A string or list of strings (text), true/false (is), or a business-hours window "
        '{"timezone", "days", "from", "to"} (within_hours/outside_hours)',
        examples=["refund"],
    )

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if field_kind(value) is None:
            if value.startswith(HEADER_PREFIX):
                raise ValueError("header conditions are 'header:<Name>' with a valid header field name")
            raise ValueError(f"unknown field {value!r}; known: {', '.join(FIELDS)}, header:<Name>")
        return value

    @field_validator("operator")
    @classmethod
    def _operator_fits_field(cls, value: str, info: ValidationInfo) -> str:
        kind = field_kind(info.data["field"]) if "field" in info.data else None
        if kind is not None and value not in OPERATORS[kind]:
            raise ValueError(
                f"operator {value!r} does not apply to {info.data['field']!r}; use {', '.join(OPERATORS[kind])}"
            )
        return value

    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, value: Any, info: ValidationInfo) -> Any:
        if "field" not in info.data or "operator" not in info.data:
            return value  # the field or operator error is the one to report
        kind = field_kind(info.data["field"])
        operator = info.data["operator"]
        if kind is Kind.BOOLEAN:
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if kind is Kind.TIME:
            if isinstance(value, BusinessHours):
                return value
            try:
                return BusinessHours.model_validate(value)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
                )
                raise ValueError(f"invalid business hours: {problems}") from None
        return _validate_text_value(value, operator)

    def is_negated(self) -> bool:
        return self.operator in NEGATED

    def to_document(self) -> dict[str, Any]:
        value = self.value.model_dump(by_alias=True) if isinstance(self.value, BusinessHours) else self.value
        return {"field": self.field, "operator": self.operator, "value": value}


def _validate_text_value(value: Any, operator: str) -> str | list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_VALUES:
        raise ValueError(f"give a string or a list of 1 to {MAX_VALUES} strings")
    for item in values:
        if not isinstance(item, str):
            raise ValueError("must be a string or a list of strings")
        if len(item) > MAX_TEXT_VALUE_LENGTH:
            raise ValueError(f"longer than {MAX_TEXT_VALUE_LENGTH} characters")
        if item == "" and operator != "equals" and operator != "not_equals":
            raise ValueError(f"must not be empty for {operator!r}")
        if operator == "matches":
            compile_pattern(item)
    return value


@dataclass(frozen=True)
class ConditionResult:
    """The verdict on one condition and a sentence saying why, as stored in a run."""

    index: int
    field: str
    operator: str
    matched: bool
    why: str
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "index": self.index,
            "field": self.field,
            "operator": self.operator,
            "matched": self.matched,
            "why": self.why,
        }
        if self.error:
            record["error"] = self.error
        return record


def _quote(text: str, limit: int = 80) -> str:
    return json.dumps(text if len(text) <= limit else text[: limit - 1] + "…", ensure_ascii=False)


def text_values(field: str, facts: Facts) -> list[str]:
    if field.startswith(HEADER_PREFIX):
        return facts.header_values(field[len(HEADER_PREFIX) :])
    match field:
        case "from":
            return [facts.from_address]
        case "from_name":
            return [facts.from_name]
        case "from_domain":
            return [facts.from_domain]
        case "to":
            return list(facts.to)
        case "cc":
            return list(facts.cc)
        case "subject":
            return [facts.subject]
        case "body":
            return [facts.body]
        case _ if field.startswith("authentication."):
            return [facts.authentication.get(field.partition(".")[2], "none")]
    raise KeyError(field)


class PatternTimeout(Exception):
    pass


def _text_holds(operator: str, actual: str, expected: str, regex_timeout: float) -> bool:
    if operator == "matches":
        try:
            return compile_pattern(expected).search(actual, timeout=regex_timeout) is not None
        except TimeoutError:
            raise PatternTimeout(expected) from None
    a, e = actual.casefold(), expected.casefold()
    match operator:
        case "equals":
            return a == e
        case "contains":
            return e in a
        case "starts_with":
            return a.startswith(e)
        case "ends_with":
            return a.endswith(e)
    raise ValueError(operator)


def evaluate_condition(
    condition: Condition, facts: Facts, index: int = 0, *, regex_timeout: float = 0.05
) -> ConditionResult:
    kind = field_kind(condition.field)
    name, op = condition.field, condition.operator

    def result(matched: bool, why: str, error: str | None = None) -> ConditionResult:
        return ConditionResult(index, name, op, matched, why, error)

    if kind is Kind.BOOLEAN:
        actual = facts.has_attachment if name == "has_attachment" else facts.is_first_message
        matched = actual is condition.value
        return result(
            matched, f"{name} is {str(actual).lower()}" + ("" if matched else f", not {str(condition.value).lower()}")
        )

    if kind is Kind.TIME:
        hours: BusinessHours = condition.value
        inside = hours.contains(facts.received_at)
        matched = inside if op == "within_hours" else not inside
        where = "within" if inside else "outside"
        return result(matched, f"received {describe_local(facts.received_at, hours)}, {where} {hours.describe()}")

    positive = NEGATED.get(op, op)
    expected_values = condition.value if isinstance(condition.value, list) else [condition.value]
    actual_values = text_values(name, facts)
    verb, negative_verb = _VERBS[positive]
    try:
        hit = next(
            (
                (actual, expected)
                for actual in actual_values
                for expected in expected_values
                if _text_holds(positive, actual, expected, regex_timeout)
            ),
            None,
        )
    except PatternTimeout as timeout:
        return result(
            False, f"pattern {_quote(str(timeout))} took longer than {regex_timeout:g}s", error="regex_timeout"
        )
    matched = (hit is not None) != condition.is_negated()
    if hit is not None:
        why = f"{name} {_quote(hit[0])} {verb} {_quote(hit[1])}"
    elif not actual_values:
        why = f"{name}: no such value in the message"
    else:
        shown = (
            _quote(actual_values[0])
            if len(actual_values) == 1
            else "[" + ", ".join(map(_quote, actual_values[:5])) + "]"
        )
        wanted = (
            _quote(expected_values[0])
            if len(expected_values) == 1
            else "any of " + ", ".join(map(_quote, expected_values[:5]))
        )
        why = f"{name} {shown} {negative_verb} {wanted}"
    return result(matched, why)
