"""Compile the query AST (:mod:`mailvault.search.query`) to tantivy ``Query`` objects.

Private. Only tantivy's ``Query.*`` constructors are used; user text reaches tantivy as
single terms, phrases, or regular expressions built here with every regex metacharacter
of the user's text escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

import tantivy
from tantivy import FieldType, Occur, Query

from mailvault.search import query as q
from mailvault.search._schema import POSITIONLESS, analyze

EXPANSION_LIMIT = 20_000  # candidate terms a prefixed wildcard may expand to
HIGHLIGHT_EXPANSION = 64  # up to this many, expanded terms are scored and highlighted
REGEX_CACHE_SIZE = 256

# Rust regex-syntax metacharacters (regex_syntax::is_meta_character). Escaping anything
# else is not safe: "\<" and "\>" are word-boundary assertions there.
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")

# user field -> (tokenized fields, whole-value fields)
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "from": (("from_text",), ("from_raw",)),
    "to": (("to_text",), ("to_raw",)),
    "cc": (("cc_text",), ("cc_raw",)),
    "bcc": (("bcc_text", "env_text"), ("bcc_raw", "env_raw")),
    "subject": (("subject",), ()),
    "body": (("body",), ()),
    "attachment": (("att_name", "att_text"), ("att_name_raw",)),
    "folder": (("folder",), ("folder_raw",)),
}
_DEFAULT = (
    ("subject", "body", "att_name", "att_text", "from_text", "to_text", "cc_text"),
    ("from_raw", "to_raw", "cc_raw", "att_name_raw"),
)
_DEFAULT_PRIVILEGED = (
    (*_DEFAULT[0], "bcc_text", "env_text"),
    (*_DEFAULT[1], "bcc_raw", "env_raw"),
)
PRIVILEGED_FIELDS = frozenset({"bcc"})


@dataclass(frozen=True)
class PhraseLeaf:
    """A phrase over a field indexed without positions (see ``_schema.POSITIONLESS``).

    ``words`` are index terms, or regular expressions (whole terms) when ``regex``.
    """

    field: str
    words: tuple[str, ...]
    regex: bool


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _REGEX_META else c for c in text)


def wildcard_regex(pattern: str) -> str:
    """``Me?er`` -> ``me.er``; ``*example.com`` -> ``.*example\\.com`` (whole term)."""
    out = []
    for c in pattern.lower():
        out.append(".*" if c == "*" else "." if c == "?" else _escape(c))
    return "".join(out)


def _words(words: Sequence[str]) -> list[str | tuple[int, str]]:
    return list(words)


def _any(queries: Sequence[Query]) -> Query | None:
    if not queries:
        return None
    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Should, x) for x in queries])


class Compiler:
    """Compiles one query. ``searcher`` (optional) lets wildcards expand to terms.

    Building a tantivy regex automaton costs milliseconds per field, so a wildcard with a
    literal prefix ("auto*", "Me?er") is expanded instead: the term dictionary is walked
    for the prefix and the candidates are filtered with the same pattern in Python. Only
    patterns without a prefix ("*example.com") or with too many candidates fall back to
    regex queries, which ``regex_cache`` may keep between searches.

    Phrases over positionless fields become :class:`PhraseLeaf` s, numbered in the order
    met. Without ``verified`` each compiles to a query for a superset of the messages the
    whole query matches: "all the phrase's words" where the phrase counts positively,
    nothing where it is negated (so its NOT lets everything through). With ``verified``
    (leaf number -> the message ids known to contain the phrase), each becomes exactly
    those messages, and the query is exact for them.
    """

    def __init__(
        self,
        schema: tantivy.Schema,
        tz: tzinfo,
        privileged: bool,
        searcher: tantivy.Searcher | None = None,
        regex_cache: MutableMapping[tuple[str, str], Query] | None = None,
        verified: Mapping[int, Sequence[int]] | None = None,
    ) -> None:
        self.schema = schema
        self.tz = tz
        self.privileged = privileged
        self.searcher = searcher
        self.regex_cache = regex_cache if regex_cache is not None else {}
        # Fields holding plain terms of the query: only those can get highlights
        # (tantivy's snippets ignore regex queries), so others skip snippet work.
        self.term_fields: set[str] = set()
        self.verified = verified
        self.phrase_leaves: list[PhraseLeaf] = []
        self._negated = False

    def compile(self, node: q.Node) -> Query:
        """The query for ``node``; matches everything when nothing in it constrains."""
        self.phrase_leaves = []
        self._negated = False
        return self._node(node) or Query.all_query()

    def _negation(self, node: q.Node) -> Query | None:
        """``node`` compiled as the operand of a NOT."""
        self._negated = not self._negated
        try:
            return self._node(node)
        finally:
            self._negated = not self._negated

    def _node(self, node: q.Node) -> Query | None:
        """None means "no constraint" (e.g. a word made only of punctuation)."""
        if isinstance(node, q.MatchAll):
            return Query.all_query()
        if isinstance(node, q.Text):
            return self._text(node)
        if isinstance(node, q.DateRange):
            return self._date(node)
        if isinstance(node, q.SizeRange):
            return Query.range_query(
                self.schema, "size", FieldType.Unsigned, node.minimum, node.maximum
            )
        if isinstance(node, q.HasAttachment):
            return Query.term_query(self.schema, "has_attachment", True)
        if isinstance(node, q.Not):
            inner = self._negation(node.child)
            if inner is None:
                return None
            return Query.boolean_query([(Occur.Must, Query.all_query()), (Occur.MustNot, inner)])
        if isinstance(node, q.And):
            return self._and(node)
        if isinstance(node, q.Or):
            parts = [self._node(c) for c in node.children]
            if any(p is None for p in parts):
                return None  # "x OR <anything>" where one side is unconstrained
            return _any([p for p in parts if p is not None])
        raise TypeError(f"unknown query node {node!r}")  # pragma: no cover

    def _and(self, node: q.And) -> Query | None:
        clauses: list[tuple[Occur, Query]] = []
        for child in node.children:
            if isinstance(child, q.Not):
                inner = self._negation(child.child)
                if inner is not None:
                    clauses.append((Occur.MustNot, inner))
            else:
                part = self._node(child)
                if part is not None:
                    clauses.append((Occur.Must, part))
        if not clauses:
            return None
        if all(occur == Occur.MustNot for occur, _ in clauses):
            clauses.insert(0, (Occur.Must, Query.all_query()))
        if len(clauses) == 1:
            return clauses[0][1]
        return Query.boolean_query(clauses)

    def _date(self, node: q.DateRange) -> Query:
        def at(day: date | None) -> datetime | None:
            return None if day is None else datetime.combine(day, time(), tzinfo=self.tz)

        lower, upper = at(node.start), at(node.end)
        return Query.range_query(
            self.schema,
            "date",
            FieldType.Date,
            lower,
            upper,
            include_lower=True,
            include_upper=upper is None,
        )

    def _text(self, node: q.Text) -> Query | None:
        text_fields: Sequence[str]
        raw_fields: Sequence[str]
        if node.field is None:
            text_fields, raw_fields = _DEFAULT_PRIVILEGED if self.privileged else _DEFAULT
        else:
            if node.field in PRIVILEGED_FIELDS and not self.privileged:
                raise q.QuerySyntaxError(
                    f"Searching '{node.field}:' needs the Compliance role", None
                )
            text_fields, raw_fields = _FIELDS[node.field]
        if node.has_wildcard:
            return self._wildcard(node.value, text_fields, raw_fields)
        terms = analyze(node.value)
        whole = node.value.strip().lower()
        out: list[Query] = []
        if terms:
            self.term_fields.update(text_fields)
            for field in text_fields:
                if len(terms) == 1:
                    out.append(Query.term_query(self.schema, field, terms[0]))
                elif field in POSITIONLESS:
                    words = [Query.term_query(self.schema, field, t) for t in terms]
                    out.append(self._phrase_leaf(PhraseLeaf(field, tuple(terms), False), words))
                else:
                    out.append(Query.phrase_query(self.schema, field, _words(terms)))
        if whole:
            out.extend(Query.term_query(self.schema, f, whole) for f in raw_fields)
        if not terms and not node.phrase:
            # Punctuation-only words ("&", "--") constrain nothing unless a whole-value
            # field has them verbatim; treat them as absent rather than as "no match".
            return None
        return _any(out) or Query.empty_query()

    def _wildcard(
        self, pattern: str, text_fields: Sequence[str], raw_fields: Sequence[str]
    ) -> Query:
        out = [self._pattern(f, pattern) for f in raw_fields]
        # Split at characters the tokenizer drops: "*example.com" becomes the two-term
        # regex phrase [".*example", "com"] over tokenized fields.
        pieces: list[str] = []
        current: list[str] = []
        for c in pattern:
            if c.isalnum() or c in q.WILDCARDS:
                current.append(c)
            elif current:
                pieces.append("".join(current))
                current = []
        if current:
            pieces.append("".join(current))
        if not all(any(c.isalnum() for c in p) for p in pieces):
            # "*.pdf" would shrink to the bare term "pdf": too broad, so only the
            # whole-value fields answer such a pattern.
            pieces = []
        regexes = [wildcard_regex(p) for p in pieces]
        for field in text_fields:
            if len(regexes) == 1:
                out.append(self._pattern(field, pieces[0]))
            elif regexes and field in POSITIONLESS:
                words = [self._pattern(field, p) for p in pieces]
                out.append(self._phrase_leaf(PhraseLeaf(field, tuple(regexes), True), words))
            elif regexes:
                out.append(Query.regex_phrase_query(self.schema, field, _words(regexes)))
        return _any(out) or Query.empty_query()

    def _phrase_leaf(self, leaf: PhraseLeaf, words: list[Query]) -> Query:
        number = len(self.phrase_leaves)
        self.phrase_leaves.append(leaf)
        if self.verified is not None:
            ids = sorted(self.verified.get(number, ()))
            if not ids:
                return Query.empty_query()
            return Query.term_set_query(self.schema, "message_id", ids)
        if self._negated:
            return Query.empty_query()
        return Query.boolean_query([(Occur.Must, w) for w in words])

    def _pattern(self, field: str, pattern: str) -> Query:
        """Terms of ``field`` matching the wildcard ``pattern`` (whole term)."""
        regex = wildcard_regex(pattern)
        prefix = re.split(r"[*?]", pattern.lower(), maxsplit=1)[0]
        if self.searcher is not None and prefix:
            found = self.searcher.terms_with_prefix(field, prefix, limit=EXPANSION_LIMIT + 1)
            if len(found) <= EXPANSION_LIMIT:
                matcher = re.compile(regex)
                terms = [t for t, _ in found if matcher.fullmatch(t)]
                if not terms:
                    return Query.empty_query()
                if len(terms) > HIGHLIGHT_EXPANSION:
                    return Query.term_set_query(self.schema, field, terms)
                # Few enough for single term queries: scored, and highlighted in snippets.
                self.term_fields.add(field)
                return _any([Query.term_query(self.schema, field, t) for t in terms]) or (
                    Query.empty_query()
                )
        key = (field, regex)
        query = self.regex_cache.get(key)
        if query is None:
            query = Query.regex_query(self.schema, field, regex)
            if len(self.regex_cache) >= REGEX_CACHE_SIZE:
                self.regex_cache.clear()  # crude, but safe under concurrent searches
            self.regex_cache[key] = query
        return query
