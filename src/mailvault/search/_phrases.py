"""Exact phrases over fields indexed without positions (private; see ``_schema``).

The index keeps the body without positions, so a phrase there first matches as "all its
words" (a superset). :func:`verified_leaves` settles it for a batch of candidates: their
body texts (from the archive, through the caller's ``TextLoader``) go into a small
in-memory tantivy index *with* positions, built with the same analyzer, and each
:class:`PhraseLeaf` runs there as a real phrase query. Using tantivy itself keeps the
phrase semantics identical to a positional index: tokenization, lowercasing, dropped
long tokens and regex phrases (``"*example.com"``) behave the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tantivy

from mailvault.search._compile import PhraseLeaf
from mailvault.search._schema import build_verification_schema, register_analyzers

TextLoader = Callable[[list[int]], dict[int, str]]

# Per batch: small, since the in-memory index lives only for one check.
_HEAP_BYTES = 16 * 1024 * 1024
_MAX_CHARS = 4_000_000  # as the main index (index.MAX_INDEXED_CHARS)
_SCHEMA = build_verification_schema()


class UnverifiableMessages(RuntimeError):
    """Body texts could not be read for some candidates (strict verification only)."""

    def __init__(self, message_ids: Sequence[int]) -> None:
        self.message_ids = sorted(message_ids)
        shown = ", ".join(str(i) for i in self.message_ids[:10])
        super().__init__(
            f"the body text of {len(self.message_ids)} message(s) could not be read to check "
            f"a phrase (ids {shown}{', …' if len(self.message_ids) > 10 else ''})"
        )


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
    fields = sorted({leaf.field for leaf in leaves})
    index = tantivy.Index(_SCHEMA)
    register_analyzers(index)
    writer = index.writer(heap_size=_HEAP_BYTES, num_threads=1)
    for message_id, text in texts.items():
        document: dict[str, list[object]] = {"message_id": [message_id]}
        document.update({field: [text[:_MAX_CHARS]] for field in fields})
        writer.add_document(tantivy.Document.from_dict(document, _SCHEMA))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    found: dict[int, list[int]] = {}
    for number, leaf in enumerate(leaves):
        result = searcher.search(
            leaf.positional_query(_SCHEMA), limit=max(1, len(texts)), count=False
        )
        addresses = [address for _score, address in result.hits]
        values = searcher.fast_field_values("message_id", addresses) if addresses else []
        found[number] = sorted(int(v) for v in values if v is not None)
    return found, texts
