"""At most two questions a message: the counting and the cut (pure logic; the service's use is in test_conversation)."""

from __future__ import annotations

import pytest

from clawhost_onboarding.questions import count_questions, keep_questions


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("What is it for?", 1),
        ("What is it for? And who uses it?", 2),
        ("Really?! Which plan?? Is this you, **Ana?**", 3),
        ("¿Para qué lo quieres? ¿Cuántas personas?", 2),
        ("Open https://t.me/shop_bot?start=1 and press Start.", 0),
        ("هل هذا أنت؟", 1),
        ("Welchen Plan m\u00f6chtest du\uff1f", 1),  # full-width
        ("No questions here.", 0),
    ],
)
def test_questions_are_counted_by_their_marks_but_not_inside_links(text: str, count: int) -> None:
    assert count_questions(text) == count


def test_the_questions_past_the_second_are_cut_and_everything_else_stays() -> None:
    text = (
        "Great, a bakery helper! What should it remind you of? How often will you use it?\n\n"
        "I recommend Pro ($49/month). Which plan do you want? Anything else?"
    )
    expected = (
        "Great, a bakery helper! What should it remind you of? How often will you use it?\n\n"
        "I recommend Pro ($49/month)."
    )
    assert keep_questions(text) == expected
    assert count_questions(keep_questions(text)) == 2


def test_two_questions_or_fewer_are_left_as_they_are() -> None:
    for text in ("Which plan?", "A? B?", "Fine. Open t.me/bot?start=1 now.", "Hi!\nWhat for?\n"):
        assert keep_questions(text) == text.rstrip()


def test_one_sentence_holding_a_third_question_goes_whole() -> None:
    assert keep_questions("One? Two? Three, four and five? Done.") == "One? Two? Done."
    assert keep_questions("One? Two?Three? End.", limit=1) == "One? End."
