"""At most two questions a message: counting the questions in a reply, and cutting the ones past the limit (pure)."""

from __future__ import annotations

import re

MAX_QUESTIONS = 2

# Closing punctuation a question mark may be followed by before the space ("…, Ana?" said, **Pro?**).
_CLOSERS = "\"'\u00bb\u201d\u2019)\\]*_"
# A question ends in a run of question marks (Latin, full-width, Arabic) followed by a closer, a space or the end: a
# question mark inside a word or a URL ("?tier=pro") asks nothing.
_QUESTION_END = re.compile(rf"[?\uff1f\u061f]+[!\uff01]?[{_CLOSERS}]*(?=\s|$)")
# Where a sentence ends: its closing punctuation and the space after it, or a line break.
_SENTENCE_END = re.compile(rf"[.!?\u2026\u3002\uff01\uff1f\u061f]+[{_CLOSERS}]*(?:\s+|$)|\n+")

REWRITE_INSTRUCTION = (
    "You shorten a chat message of an onboarding assistant. The message below asks {count} questions; it may ask at "
    "most {limit}. Rewrite it so it asks at most {limit} questions: keep the questions that matter most for the next "
    "step, keep every fact, link and number, keep its language and tone, and change nothing else. Answer with the "
    "rewritten message only."
)


def count_questions(text: str) -> int:
    return len(_QUESTION_END.findall(text))


def _sentences(text: str) -> list[str]:
    """The text cut after each sentence's end (the pieces joined give the text back)."""
    pieces: list[str] = []
    start = 0
    for end in _SENTENCE_END.finditer(text):
        if end.end() > start:
            pieces.append(text[start : end.end()])
            start = end.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def keep_questions(text: str, limit: int = MAX_QUESTIONS) -> str:
    """The text without the sentences that ask a question past the first `limit` (everything else as it was)."""
    kept: list[str] = []
    asked = 0
    for sentence in _sentences(text):
        questions = count_questions(sentence)
        if questions and asked + questions > limit:
            continue
        asked += questions
        kept.append(sentence)
    return "".join(kept).rstrip()
