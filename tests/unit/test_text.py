"""Word counting and the extractive summariser."""

from __future__ import annotations

import pytest

from tollgate_jobs.domain.text import analyse, sentences, summarise, words


@pytest.mark.parametrize(
    ("text", "count", "unique"),
    [
        ("The cat and the hat.", 5, 4),
        ("don't stop, DON'T stop", 4, 2),
        ("In 2026 there were 2026 reasons", 6, 5),
        ("Привет мир, привет всем", 4, 3),
        ("naïve café — CAFÉ", 3, 2),
        ("snake_case is two words", 5, 5),
        ("'quoted' words", 2, 2),
        ("école e\u0301cole ÉCOLE", 3, 1),
        ("don't don\u2019t", 2, 1),
    ],
)
def test_words_are_runs_of_letters_digits_and_inner_apostrophes(
    text: str, count: int, unique: int
) -> None:
    """The product's word rules, in several scripts."""
    assert analyse(text) == (
        f"Analysis complete. Word count: {count}. Unique words: {unique}."
    )


def test_an_apostrophe_only_joins_letters() -> None:
    """Leading and trailing apostrophes are not part of a word."""
    assert words("'tis rock 'n' roll's") == ["tis", "rock", "n", "roll's"]


def test_sentences_split_on_terminal_punctuation_in_any_script() -> None:
    """Latin, CJK and Devanagari full stops all end a sentence."""
    assert sentences("One. Two! Three? 日本です。次。 नमस्ते। अंत।") == [
        "One.",
        "Two!",
        "Three?",
        "日本です。",
        "次。",
        "नमस्ते।",
        "अंत।",
    ]


def test_a_summary_is_made_of_the_texts_own_sentences_in_order() -> None:
    """Extractive: only original sentences, in their original order."""
    text = (
        "Ledgers record credits. The sky is blue today. Credits move between "
        "ledgers. Ledgers never lose credits. Birds sing."
    )
    summary = summarise(text)
    chosen = sentences(summary)
    original = sentences(text)
    assert chosen and all(s in original for s in chosen)
    assert [original.index(s) for s in chosen] == sorted(
        original.index(s) for s in chosen
    )
    assert "Birds sing." not in chosen


def test_summaries_are_deterministic() -> None:
    """The same text always gives the same summary."""
    text = "A b c. A b. C d e. A. E f g. A b c d."
    assert len({summarise(text) for _ in range(20)}) == 1


def test_a_single_sentence_is_its_own_summary() -> None:
    """Nothing to choose from: the text comes back."""
    assert summarise("  Just one sentence here  ") == "Just one sentence here"
