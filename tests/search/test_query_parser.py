"""The query language parser: AST shapes and user-facing syntax errors."""

from __future__ import annotations

from datetime import date

import pytest

from mailvault.search.query import (
    And,
    DateRange,
    HasAttachment,
    MatchAll,
    Not,
    Or,
    QuerySyntaxError,
    SizeRange,
    Text,
    parse,
)


def test_words_are_anded_and_or_binds_looser() -> None:
    assert parse("a b OR c") == Or((And((Text(None, "a"), Text(None, "b"))), Text(None, "c")))
    assert parse("a AND b") == And((Text(None, "a"), Text(None, "b")))


def test_lowercase_operators_are_words() -> None:
    assert parse("cats or dogs") == And((Text(None, "cats"), Text(None, "or"), Text(None, "dogs")))


def test_negation_forms() -> None:
    assert parse("-spam") == Not(Text(None, "spam"))
    assert parse("NOT spam") == Not(Text(None, "spam"))
    assert parse("e-mail") == Text(None, "e-mail")


def test_parentheses_and_field_groups() -> None:
    assert parse("(a OR b) c") == And((Or((Text(None, "a"), Text(None, "b"))), Text(None, "c")))
    assert parse("from:(alice OR bob)") == Or((Text("from", "alice"), Text("from", "bob")))


def test_phrases_and_fields() -> None:
    assert parse('"hello world"') == Text(None, "hello world", phrase=True)
    assert parse('subject:"big deal"') == Text("subject", "big deal", phrase=True)
    assert parse("FROM:alice") == Text("from", "alice")
    assert parse("from: alice") == Text("from", "alice")
    assert parse("Me?er").has_wildcard  # type: ignore[attr-defined]
    assert not parse('"Me?er"').has_wildcard  # type: ignore[attr-defined]


def test_empty_query_matches_all() -> None:
    assert parse("") == MatchAll()
    assert parse("   ") == MatchAll()


def test_dates() -> None:
    assert parse("date:2024-01-01..2024-03-31") == DateRange(date(2024, 1, 1), date(2024, 4, 1))
    assert parse("date:2024-02") == DateRange(date(2024, 2, 1), date(2024, 3, 1))
    assert parse("date:2024") == DateRange(date(2024, 1, 1), date(2025, 1, 1))
    assert parse("date:2024-12") == DateRange(date(2024, 12, 1), date(2025, 1, 1))
    assert parse("date:2024-03-05..") == DateRange(date(2024, 3, 5), None)
    assert parse("after:2024-01-01") == DateRange(date(2024, 1, 1), None)
    assert parse("before:2024-02-01") == DateRange(None, date(2024, 2, 1))


def test_sizes_and_has() -> None:
    assert parse("size:>1MB") == SizeRange(1024 * 1024 + 1, None)
    assert parse("size:<100KB") == SizeRange(None, 100 * 1024 - 1)
    assert parse("size:>=1.5mb") == SizeRange(int(1.5 * 1024 * 1024), None)
    assert parse("size:10KB..20KB") == SizeRange(10 * 1024, 20 * 1024)
    assert parse("has:attachment") == HasAttachment()


@pytest.mark.parametrize(
    ("query", "position", "fragment"),
    [
        ("foo:bar", 1, "Unknown field 'foo:'"),
        ("hello Re: x", 7, "Unknown field 'Re:'"),
        ("(a OR b", 1, "Missing closing ')'"),
        ("a b)", 4, "Unmatched ')'"),
        ('say "hello', 5, "Missing closing quote"),
        ("date:2024-13-01", 6, "not a valid date"),
        ("date:yesterday", 6, "not a date"),
        ("date:2024-03-01..2024-01-01", 6, "ends before it starts"),
        ("after:soon", 7, "not a date"),
        ("size:big", 6, "size:>N"),
        ("size:>lots", 7, "not a size"),
        ("has:wings", 5, "has:attachment"),
        ("a OR", 5, "ends too early"),
        ("OR a", 1, "needs a term on both sides"),
        ("NOT", 1, "must be followed by a term"),
        ("from:", 1, "needs a value"),
        ("subject:)", 1, "needs a value"),
        ("*", 1, "wildcard needs at least one letter"),
        ("from:?*", 6, "wildcard needs at least one letter"),
        (":x", 1, "must follow a field name"),
        ('size:"1MB"', 6, "single value"),
    ],
)
def test_syntax_errors_carry_message_and_position(query: str, position: int, fragment: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    assert fragment in info.value.message
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


def test_overlong_queries_are_refused() -> None:
    with pytest.raises(QuerySyntaxError, match="too long"):
        parse("x" * 5000)
    with pytest.raises(QuerySyntaxError, match="too long"):
        parse(" ".join(["w"] * 100))
