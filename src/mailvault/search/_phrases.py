"""Exact phrases over fields indexed without positions (private; see ``_schema``).

The index keeps the body without positions, so a phrase there first matches as "all its
words" (a superset). :func:`verified_leaves` settles it for a batch of candidates, with
their body texts from the archive (the caller's ``TextLoader``), answering exactly what a
positional index would:

* plain phrases: the lowercased text is searched for the words joined by separators
  (a regular expression that finds every real occurrence and perhaps more), and each
  place found is confirmed by tantivy's own tokenizer on that stretch of text, one
  character wider on each side (so "mydata frame" or "data framework" are not "data
  frame");
* phrases with wildcards: the whole text is split into the index's terms, where a token
  the index drops as too long (``MAX_TOKEN_BYTES``) still takes its position.

A property test holds both against a positional tantivy index. (A positional tantivy
index built in memory per batch answered the same but cost 40 ms a batch, nearly all in
its commit; splitting whole texts in Python cost 0.5 ms a message.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from tantivy import Filter, TextAnalyzerBuilder, Tokenizer

from mailvault.search._compile import PhraseLeaf
from mailvault.search._schema import MAX_TOKEN_BYTES

TextLoader = Callable[[list[int]], dict[int, str]]

_MAX_CHARS = 4_000_000  # as the main index (index.MAX_INDEXED_CHARS)
# The index's tokenizer without its filters: lowercasing and the length limit are applied
# here, per token, in the index's order (length first, on the original bytes).
_SPLIT = TextAnalyzerBuilder(Tokenizer.simple()).build()
_SPLIT_LOWER = TextAnalyzerBuilder(Tokenizer.simple()).filter(Filter.lowercase()).build()
# Between two terms of a phrase there is at least one character that is not a letter or
# digit; Python's [\W_] holds every such character (and a few combining marks more,
# which the confirmation by the tokenizer then rejects).
_SEPARATOR = r"[\W_]+"


class UnverifiableMessages(RuntimeError):
    """Body texts could not be read for some candidates (strict verification only)."""

    def __init__(self, message_ids: Sequence[int]) -> None:
        self.message_ids = sorted(message_ids)
        shown = ", ".join(str(i) for i in self.message_ids[:10])
        super().__init__(
            f"the body text of {len(self.message_ids)} message(s) could not be read to check "
            f"a phrase (ids {shown}{', …' if len(self.message_ids) > 10 else ''})"
        )


def lowercase(text: str) -> str:
    """``text`` lowercased as tantivy's filter does: character by character, so a capital
    sigma becomes the medial small sigma even at the end of a word (``str.lower`` writes
    the final form there; it has no other context-dependent mapping)."""
    return text.replace("\N{GREEK CAPITAL LETTER SIGMA}", "\N{GREEK SMALL LETTER SIGMA}").lower()


def index_terms(text: str) -> list[str | None]:
    """The terms of ``text`` at their positions, as the index sees them; None where the
    index drops a token (too long) but counts its position."""
    return [
        lowercase(token) if len(token.encode("utf-8")) < MAX_TOKEN_BYTES else None
        for token in _SPLIT.analyze(text[:_MAX_CHARS])
    ]


def has_phrase(terms: list[str | None], leaf: PhraseLeaf) -> bool:
    """Whether ``leaf``'s words occur as consecutive ``terms``."""
    count = len(leaf.words)
    if leaf.regex:
        matchers = [re.compile(word) for word in leaf.words]
        for start in range(len(terms) - count + 1):
            if all(
                (term := terms[start + k]) is not None and matcher.fullmatch(term)
                for k, matcher in enumerate(matchers)
            ):
                return True
        return False
    words = list(leaf.words)
    first = words[0]
    start = 0
    while True:
        try:
            at = terms.index(first, start)
        except ValueError:
            return False
        if terms[at : at + count] == words:
            return True
        start = at + 1


def _finder(leaf: PhraseLeaf) -> re.Pattern[str]:
    return re.compile(_SEPARATOR.join(re.escape(word) for word in leaf.words))


def occurs_in(lowered: str, leaf: PhraseLeaf, finder: re.Pattern[str]) -> bool:
    """Whether the plain phrase ``leaf`` occurs in ``lowered`` (a lowercased text)."""
    words = list(leaf.words)
    count = len(words)
    position = 0
    while (found := finder.search(lowered, position)) is not None:
        start, end = found.span()
        stretch = lowered[max(0, start - 1) : end + 1]
        if _SPLIT_LOWER.analyze(stretch)[:count] == words:
            return True
        position = start + 1
    return False


def verified_leaves(
    leaves: Sequence[PhraseLeaf],
    message_ids: Sequence[int],
    loader: TextLoader,
    *,
    strict: bool,
) -> tuple[dict[int, list[int]], dict[int, str]]:
    """Leaf number -> the ids among ``message_ids`` whose text has that phrase; and the
    texts loaded (for snippets).

    A message whose text the loader does not return matches no phrase, unless ``strict``
    (compliance decisions), where :class:`UnverifiableMessages` is raised instead.
    """
    if not leaves or not message_ids:
        return {}, {}
    texts = loader(list(message_ids))
    missing = [m for m in message_ids if m not in texts]
    if missing and strict:
        raise UnverifiableMessages(missing)
    found: dict[int, list[int]] = {number: [] for number in range(len(leaves))}
    finders = {n: _finder(leaf) for n, leaf in enumerate(leaves) if not leaf.regex}
    for message_id, text in texts.items():
        lowered = lowercase(text[:_MAX_CHARS]) if finders else ""
        terms: list[str | None] | None = None
        for number, leaf in enumerate(leaves):
            if leaf.regex:
                terms = index_terms(text) if terms is None else terms
                matched = has_phrase(terms, leaf)
            else:
                matched = occurs_in(lowered, leaf, finders[number])
            if matched:
                found[number].append(message_id)
    return found, texts
