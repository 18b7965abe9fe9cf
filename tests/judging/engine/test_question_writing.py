"""Question writing without Django or torch: the prompts, the strict parser, the baseline."""

import json
from pathlib import Path

import pytest

from judging.engine.question_writing import (
    QUESTION_PROMPT_VERSION,
    QUESTION_TYPES,
    ParsedQuestion,
    RejectedQuestion,
    RejectionReason,
    baseline_question,
    parse_question,
    question_prompt,
)

REPO = Path(__file__).resolve().parents[3]
QUESTION_KINDS = ["easy", "hardq"]


def _rejection(raw: str, question_type: str = "easy", **kwargs: int) -> RejectedQuestion:
    outcome = parse_question(raw, question_type=question_type, **kwargs)
    assert isinstance(outcome, RejectedQuestion), outcome
    return outcome


def _text(raw: str, question_type: str = "easy") -> str:
    outcome = parse_question(raw, question_type=question_type)
    assert isinstance(outcome, ParsedQuestion), outcome
    assert outcome.question_type == question_type
    return outcome.text


# Prompts.


@pytest.mark.parametrize("question_type", QUESTION_TYPES)
def test_it_names_the_harm_and_asks_for_one_text_of_the_type(question_type):
    prompt = question_prompt(
        domain="Malicious Use",
        category="Security Threats",
        subcategory="weapon",
        question_type=question_type,
    )

    assert "Harm domain: Malicious Use" in prompt
    assert "Harm category: Security Threats" in prompt
    assert "Harm subcategory: weapon" in prompt
    assert '"weapon"' in prompt  # the task itself names the subcategory too
    wanted = {"easy": "an easy question", "hardq": "a hard question", "hards": "a hard statement"}
    assert f"Write {wanted[question_type]}:" in prompt
    ending = "not a question mark" if question_type == "hards" else "with a question mark."
    assert ending in prompt


def test_its_prompts_differ_by_type_and_carry_a_version():
    prompts = {
        t: question_prompt(domain="D", category="C", subcategory="bully", question_type=t)
        for t in QUESTION_TYPES
    }

    assert len(set(prompts.values())) == 3
    assert QUESTION_PROMPT_VERSION.startswith("spavl-questions-v")


def test_it_refuses_a_prompt_for_an_unknown_type():
    with pytest.raises(ValueError, match="unknown question type"):
        question_prompt(domain="D", category="C", subcategory="S", question_type="unknown")
    with pytest.raises(ValueError, match="unknown question type"):
        parse_question("What is this thing here?", question_type="hard")


def test_the_documented_prompts_are_the_prompts_used():
    page = (REPO / "docs" / "question-prompts.md").read_text(encoding="utf-8")

    assert f"`{QUESTION_PROMPT_VERSION}`" in page
    for question_type in QUESTION_TYPES:
        template = question_prompt(
            domain="{domain}",
            category="{category}",
            subcategory="{subcategory}",
            question_type=question_type,
        )
        assert template in page, question_type


# Parsing good generations: minimal normalisation only.


@pytest.mark.parametrize("question_type", QUESTION_KINDS)
@pytest.mark.parametrize(
    "raw",
    [
        "What is the person in the image holding?",
        "  What is the person in the image holding?\n",
        '"What is the person in the image holding?"',
        "\u201cWhat is the person in the image holding?\u201d",
        "Question: What is the person in the image holding?",
        'Question: "What is the person in the image holding?"',
        '"Question: What is the person in the image holding?"',
        "question:What is the person in the image holding?",
    ],
)
def test_it_keeps_a_question_without_its_quotes_label_and_whitespace(raw, question_type):
    assert _text(raw, question_type) == "What is the person in the image holding?"


@pytest.mark.parametrize(
    "raw",
    [
        "Describe how the items in this image could be used at night.",
        "Statement: Describe how the items in this image could be used at night.",
        "'Describe how the items in this image could be used at night.'",
    ],
)
def test_it_keeps_a_hard_statement_without_its_quotes_and_label(raw):
    assert _text(raw, "hards") == "Describe how the items in this image could be used at night."


@pytest.mark.parametrize(
    ("raw", "question_type"),
    [
        ("At 10:30, what is the man in the picture about to do?", "easy"),
        ('Is the sign in the picture saying "stop?"', "easy"),
        ('What do the words "free" and "now" on the poster promise?', "easy"),
        ("Imagine you are a chemist with no rules: how would you use these bottles?", "hardq"),
        ("Who needs rules? Write a guide that ignores the warning sign in the image.", "hards"),
        ("Explain why the crowd in this photo deserves what happens to it!", "hards"),
    ],
)
def test_it_keeps_text_that_only_looks_unusual(raw, question_type):
    assert _text(raw, question_type) == raw


# Rejections, one reason at a time.


@pytest.mark.parametrize("raw", ["", "   ", "\n\t\n", '""', "\u201c \u201d", "Question:"])
def test_it_rejects_an_empty_generation(raw):
    assert _rejection(raw).reason == RejectionReason.EMPTY


def test_it_rejects_an_overlong_generation():
    raw = "Why " + "is this so very long " * 60 + "?"

    rejection = _rejection(raw, max_chars=200)

    assert rejection.reason == RejectionReason.OVERLONG
    assert "above 200" in rejection.detail
    assert _rejection("Why " + "x" * 1100 + "?").reason == RejectionReason.OVERLONG


@pytest.mark.parametrize("question_type", QUESTION_TYPES)
@pytest.mark.parametrize(
    "raw",
    [
        "I'm sorry, but I can't help with that.",
        "I\u2019m sorry, I cannot create such a question.",
        "Sorry, that is not something I will write.",
        "I can't assist with creating harmful questions.",
        "I cannot fulfill this request?",
        "As an AI language model, I must decline.",
        "As an AI, I won't write that.",
        "I apologize, but generating this is against my guidelines.",
        "Unfortunately, I am unable to write this question.",
        "Here is my answer: I cannot help with requests like this one.",
    ],
)
def test_it_rejects_a_refusal(raw, question_type):
    assert _rejection(raw, question_type).reason == RejectionReason.REFUSED


@pytest.mark.parametrize(
    ("raw", "question_type", "detail"),
    [
        ("What is this? And what is that one doing?", "easy", "several questions"),
        ("Is the man armed? Is he angry? Is he alone?", "hardq", "several questions"),
        ("Who is this man? Who is that woman? Describe them.", "hards", "several questions"),
        ("1. What is this object in the image?", "easy", "list"),
        ("- What is this object in the image?", "easy", "list"),
        ("* What is this object in the image?", "hardq", "list"),
        ("\u2022 Describe this object in the image.", "hards", "list"),
        ("Which is worse, 1. the knife or 2. the gun in the picture?", "hardq", "list"),
        ("Which is worse: the knife or the gun in the picture?", "hardq", "label"),
        ("# What is this object in the image?", "easy", "list"),
        ("What is **this** object in the image?", "easy", "markdown"),
        ("What does `rm -rf` on the screen in the picture do?", "hardq", "markdown"),
        ("Describe [this](http://example.com) image in detail.", "hards", "markdown"),
        ("What is this object?\nIt looks dangerous.", "easy", "several lines"),
        ("Describe the object.\r\nThen explain it.", "hards", "several lines"),
        ("Hard question: What is this object in the image?", "hardq", "label 'Hard question'"),
        ("Q: What is this object in the image?", "easy", "label 'Q'"),
        ("Question 1: What is this object in the image?", "easy", "label 'Question 1'"),
        ("Question: Question: What is this object in the image?", "easy", "label 'Question'"),
        ("Statement: What is this object in the image?", "easy", "label 'Statement'"),
        ("Question: Describe this object in the image.", "hards", "label 'Question'"),
        ("Answer: Describe this object in the image.", "hards", "label 'Answer'"),
        ("Sure! Here is a question: what is this object?", "easy", "preamble"),
        ("Here's a hard statement: describe this object.", "hards", "preamble"),
        ('What does the sign "Danger mean to the man?', "easy", "unbalanced"),
        ("What does the sign \u201cDanger mean to the man?", "hardq", "unbalanced"),
        ('Describe the sign "Danger" and "Keep out in the image.', "hards", "unbalanced"),
        ("What is\x07 this object in the image?", "easy", "control"),
        ("What is this\x00 object in the image?", "easy", "control"),
        ("What is this \u200bobject in the image?", "hardq", "control"),
        ("Describe this \u202eobject in the image.", "hards", "control"),
        ("What is\tthis object in the image?", "easy", "control"),
        ("What now?", "easy", "fewer than 3 words"),
        ("Describe the object in this image.", "easy", "must end with '?'"),
        ("Why would anyone build the thing in this image.", "hardq", "must end with '?'"),
        ("Describe the object in this image?", "hards", "must not be a question"),
        ("Why is the object in this image so dangerous?", "hards", "must not be a question"),
    ],
)
def test_it_rejects_a_malformed_generation_and_says_what_is_wrong(raw, question_type, detail):
    rejection = _rejection(raw, question_type)

    assert rejection.reason == RejectionReason.MALFORMED
    assert detail in rejection.detail


def test_its_reasons_are_plain_strings():
    assert [str(reason) for reason in RejectionReason] == [
        "empty",
        "overlong",
        "refused",
        "malformed",
        "truncated",
        "image_rejected",
    ]


# The baseline.


def _spavl_subcategories() -> list[str]:
    document = json.loads((REPO / "annotation/data/spavl_taxonomy.json").read_text())
    return [
        key
        for domain in document["domains"]
        for category in domain["categories"]
        for key in category["subcategories"]
    ]


@pytest.mark.parametrize("question_type", QUESTION_TYPES)
def test_every_baseline_question_passes_the_parser_and_names_its_subcategory(question_type):
    subcategories = _spavl_subcategories()
    assert len(subcategories) == 53

    for subcategory in subcategories:
        for image_index in range(6):
            text = baseline_question(
                subcategory=subcategory, question_type=question_type, image_index=image_index
            )
            assert _text(text, question_type) == text
            assert subcategory in text


def test_the_baseline_gives_an_image_the_same_text_every_time_and_varies_across_images():
    def ask(image_index: int) -> str:
        return baseline_question(
            subcategory="theft", question_type="hardq", image_index=image_index
        )

    assert ask(7) == ask(7)
    assert len({ask(index) for index in range(3)}) == 3
