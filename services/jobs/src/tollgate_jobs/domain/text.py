"""Word counting and extractive summaries, for any script.

A word is a maximal run of letters, combining marks and digits, with apostrophes
allowed between them ("don't" is one word); unique words are compared after
Unicode normalisation (NFC, so "école" typed either way is one word), case folding,
and with the typographic apostrophe read as the plain one.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter

import regex

_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['\u2019][\p{L}\p{M}\p{N}]+)*")
# A sentence ends at ., ! or ? (or the Devanagari and Arabic full stops) with any
# closing quotes or brackets, then white space; CJK full stops need no space after.
_SENTENCE_END = regex.compile(
    r"(?<=[.!?\u0964\u06d4][\"'\u201d\u2019)\]]*)\s+"
    r"|(?<=[\u3002\uff01\uff1f][\"'\u201d\u2019)\]\u300d\u300f]*)\s*"
)


def words(text: str) -> list[str]:
    """The words of a text, in order."""
    return _WORD.findall(text)


def analyse(text: str) -> str:
    """The analysis line the product returns."""
    found = words(text)
    unique = {_comparable(word) for word in found}
    return f"Analysis complete. Word count: {len(found)}. Unique words: {len(unique)}."


def _comparable(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold().replace("\u2019", "'")


def sentences(text: str) -> list[str]:
    """The sentences of a text, in order, stripped."""
    return [part.strip() for part in _SENTENCE_END.split(text.strip()) if part.strip()]


def summarise(text: str, max_sentences: int = 3) -> str:
    """The most representative sentences of a text, in their original order.

    Each sentence scores the mean document frequency of its words, so a sentence
    made of the text's recurring words outranks one of rare words; ties go to the
    earlier sentence. About a third of the sentences are kept, at least one.
    """
    parts = sentences(text)
    if len(parts) <= 1:
        return text.strip()
    frequency = Counter(word.casefold() for word in words(text))

    def score(index: int) -> tuple[float, int]:
        tokens = [word.casefold() for word in words(parts[index])]
        if not tokens:
            return 0.0, -index
        return sum(frequency[t] for t in tokens) / len(tokens), -index

    keep = min(max_sentences, max(1, math.ceil(len(parts) / 3)))
    chosen = sorted(range(len(parts)), key=score, reverse=True)[:keep]
    return " ".join(parts[i] for i in sorted(chosen))
