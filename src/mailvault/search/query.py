"""The user's search language: a small hand-written lexer and parser producing an AST.

The AST is compiled to tantivy queries in :mod:`mailvault.search._compile`; user text is
never handed to tantivy's own query parser, so its syntax (and its error messages) never
leak to users.

Grammar (operators are upper case only, so ``or`` and ``not`` stay ordinary words)::

    query   := or_expr
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= unary (["AND"] unary)*          # juxtaposition means AND
    unary   := ("NOT" | "-") unary | primary
    primary := "(" or_expr ")" | field ":" (value | phrase | "(" or_expr ")") | phrase | word

Words may hold ``*`` (any run of characters) and ``?`` (exactly one character). Fields:
``from: to: cc: bcc: subject: body: attachment: folder:`` take text; ``date:``, ``after:``,
``before:``, ``size:`` and ``has:attachment`` take structured values checked here, so a bad
date or size is reported with its position. ``after:`` is inclusive of the day given and
``before:`` exclusive (as in Gmail); a date may be ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

TEXT_FIELDS = ("from", "to", "cc", "bcc", "subject", "body", "attachment", "folder")
SPECIAL_FIELDS = ("date", "after", "before", "size", "has")
KNOWN_FIELDS = TEXT_FIELDS + SPECIAL_FIELDS
WILDCARDS = frozenset("*?")
MAX_QUERY_LENGTH = 2000
MAX_CLAUSES = 64


class QuerySyntaxError(ValueError):
    """A query the user has to correct; ``str()`` is a message fit to show them."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position  # 1-based column in the query, None when not local
        text = f"{message} (at position {position})" if position is not None else message
        super().__init__(text)


# --- AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base class of AST nodes."""


@dataclass(frozen=True)
class MatchAll(Node):
    """The empty query: every message the scope allows."""


@dataclass(frozen=True)
class Text(Node):
    """A word (possibly with wildcards) or a quoted phrase, in a field or in all fields."""

    field: str | None
    value: str
    phrase: bool = False

    @property
    def has_wildcard(self) -> bool:
        return not self.phrase and any(c in WILDCARDS for c in self.value)


@dataclass(frozen=True)
class DateRange(Node):
    """``start <= message date < end`` (local calendar days; either side may be open)."""

    start: date | None
    end: date | None


@dataclass(frozen=True)
class SizeRange(Node):
    """``minimum <= size <= maximum`` in bytes (either side may be open)."""

    minimum: int | None
    maximum: int | None


@dataclass(frozen=True)
class HasAttachment(Node):
    """``has:attachment``."""


@dataclass(frozen=True)
class And(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or(Node):
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    child: Node


# --- Lexer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str  # WORD PHRASE FIELD LPAREN RPAREN AND OR NOT NEG EOF
    text: str
    pos: int  # 0-based


_STOP = frozenset(' \t\r\n\f\v()"')


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c == "(":
            toks.append(_Tok("LPAREN", c, i))
            i += 1
        elif c == ")":
            toks.append(_Tok("RPAREN", c, i))
            i += 1
        elif c == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError("Missing closing quote", i + 1)
            toks.append(_Tok("PHRASE", query[i + 1 : end], i))
            i = end + 1
        elif c == "-" and i + 1 < n and query[i + 1] not in _STOP | {"-"}:
            toks.append(_Tok("NEG", c, i))
            i += 1
        else:
            start = i
            while i < n and query[i] not in _STOP:
                i += 1
            word = query[start:i]
            if word in ("AND", "OR", "NOT"):
                toks.append(_Tok(word, word, start))
            elif ":" in word:
                name, _, value = word.partition(":")
                if not name:
                    raise QuerySyntaxError(
                        "A ':' must follow a field name such as from:", start + 1
                    )
                toks.append(_Tok("FIELD", name, start))
                if value:
                    toks.append(_Tok("WORD", value, start + len(name) + 1))
            else:
                toks.append(_Tok("WORD", word, start))
    toks.append(_Tok("EOF", "", n))
    return toks


# --- Parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: str) -> None:
        self.toks = _lex(query)
        self.i = 0
        self.clauses = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            return MatchAll()
        node = self.or_expr(None)
        tok = self.peek()
        if tok.kind == "RPAREN":
            raise QuerySyntaxError("Unmatched ')'", tok.pos + 1)
        if tok.kind != "EOF":  # pragma: no cover - or_expr consumes everything else
            raise QuerySyntaxError(f"Unexpected '{tok.text}'", tok.pos + 1)
        return node

    def or_expr(self, field: str | None) -> Node:
        children = [self.and_expr(field)]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.and_expr(field))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, field: str | None) -> Node:
        children = [self.unary(field)]
        while self.peek().kind not in ("OR", "RPAREN", "EOF"):
            if self.peek().kind == "AND":
                self.take()
            children.append(self.unary(field))
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self, field: str | None) -> Node:
        tok = self.peek()
        if tok.kind in ("NOT", "NEG"):
            self.take()
            nxt = self.peek()
            if nxt.kind in ("EOF", "RPAREN", "OR", "AND"):
                raise QuerySyntaxError(f"'{tok.text}' must be followed by a term", tok.pos + 1)
            return Not(self.unary(field))
        return self.primary(field)

    def primary(self, field: str | None) -> Node:
        tok = self.take()
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise QuerySyntaxError(f"The query is too long (more than {MAX_CLAUSES} terms)")
        if tok.kind == "LPAREN":
            node = self.or_expr(field)
            close = self.take()
            if close.kind != "RPAREN":
                raise QuerySyntaxError("Missing closing ')'", tok.pos + 1)
            return node
        if tok.kind == "WORD":
            return self.word(field, tok)
        if tok.kind == "PHRASE":
            return Text(field, tok.text, phrase=True)
        if tok.kind == "FIELD":
            return self.fielded(tok)
        if tok.kind in ("AND", "OR"):
            raise QuerySyntaxError(f"'{tok.text}' needs a term on both sides", tok.pos + 1)
        if tok.kind == "RPAREN":
            raise QuerySyntaxError("Unmatched ')'", tok.pos + 1)
        raise QuerySyntaxError("The query ends too early", tok.pos + 1)

    def word(self, field: str | None, tok: _Tok) -> Node:
        if any(c in WILDCARDS for c in tok.text) and not any(c.isalnum() for c in tok.text):
            raise QuerySyntaxError(
                "A wildcard needs at least one letter or digit next to it", tok.pos + 1
            )
        return Text(field, tok.text)

    def fielded(self, tok: _Tok) -> Node:
        name = tok.text.lower()
        if name not in KNOWN_FIELDS:
            known = ", ".join(f"{f}:" for f in KNOWN_FIELDS)
            raise QuerySyntaxError(f"Unknown field '{tok.text}:' (known: {known})", tok.pos + 1)
        value = self.peek()
        if value.kind not in ("WORD", "PHRASE", "LPAREN"):
            raise QuerySyntaxError(f"'{name}:' needs a value", tok.pos + 1)
        if name in SPECIAL_FIELDS:
            if value.kind != "WORD":
                raise QuerySyntaxError(f"'{name}:' takes a single value", value.pos + 1)
            self.take()
            return _special(name, value.text, value.pos)
        if value.kind == "LPAREN":
            self.take()
            node = self.or_expr(name)
            close = self.take()
            if close.kind != "RPAREN":
                raise QuerySyntaxError("Missing closing ')'", value.pos + 1)
            return node
        self.take()
        if value.kind == "PHRASE":
            return Text(name, value.text, phrase=True)
        return self.word(name, value)


# --- Structured values -------------------------------------------------------------------

_DATE_RE = re.compile(r"^(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?b?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1024**3}


def _special(name: str, value: str, pos: int) -> Node:
    col = pos + 1
    if name == "has":
        if value.lower() in ("attachment", "attachments"):
            return HasAttachment()
        raise QuerySyntaxError(f"Unknown value 'has:{value}' (use has:attachment)", col)
    if name == "size":
        return _size(value, col)
    if name == "after":
        return DateRange(_day_span(value, col)[0], None)
    if name == "before":
        return DateRange(None, _day_span(value, col)[0])
    if ".." in value:
        low, _, high = value.partition("..")
        if not low and not high:
            raise QuerySyntaxError("A date range needs at least one date", col)
        start = _day_span(low, col)[0] if low else None
        end = _day_span(high, col + len(low) + 2)[1] if high else None
        if start and end and start >= end:
            raise QuerySyntaxError("The date range ends before it starts", col)
        return DateRange(start, end)
    start, end = _day_span(value, col)
    return DateRange(start, end)


def _day_span(text: str, col: int) -> tuple[date, date]:
    """The first day of a ``YYYY[-MM[-DD]]`` period and the first day after it."""
    m = _DATE_RE.match(text)
    if not m:
        raise QuerySyntaxError(f"'{text}' is not a date (use YYYY-MM-DD)", col)
    year, month, day = int(m[1]), m[2], m[3]
    try:
        if month is None:
            return date(year, 1, 1), date(year + 1, 1, 1)
        first = date(year, int(month), int(day or 1))
        if day is None:
            nxt = date(year + (first.month == 12), first.month % 12 + 1, 1)
            return first, nxt
        return first, date.fromordinal(first.toordinal() + 1)
    except (ValueError, OverflowError):
        raise QuerySyntaxError(f"'{text}' is not a valid date", col) from None


def _bytes(text: str, col: int) -> int:
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise QuerySyntaxError(f"'{text}' is not a size (use e.g. 100KB, 1.5MB)", col)
    return int(float(m[1]) * _UNITS[m[2].lower()])


def _size(value: str, col: int) -> Node:
    if ".." in value:
        low, _, high = value.partition("..")
        lo = _bytes(low, col) if low else None
        hi = _bytes(high, col + len(low) + 2) if high else None
        if lo is None and hi is None:
            raise QuerySyntaxError("A size range needs at least one size", col)
        return SizeRange(lo, hi)
    for op in (">=", "<=", ">", "<"):
        if value.startswith(op):
            n = _bytes(value[len(op) :], col + len(op))
            if op == ">=":
                return SizeRange(n, None)
            if op == "<=":
                return SizeRange(None, n)
            if op == ">":
                return SizeRange(n + 1, None)
            if n == 0:
                raise QuerySyntaxError("No message is smaller than 0 bytes", col)
            return SizeRange(None, n - 1)
    raise QuerySyntaxError("Use size:>N, size:<N or size:N..M (e.g. size:>1MB)", col)


def parse(query: str) -> Node:
    """Parse user query text into an AST; raises :class:`QuerySyntaxError`."""
    if len(query) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(f"The query is too long (more than {MAX_QUERY_LENGTH} characters)")
    return _Parser(query).parse()
