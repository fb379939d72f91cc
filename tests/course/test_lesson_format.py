"""Every built topic's hints and interview questions follow one format
(docs/authoring-a-topic.md, "Hints and questions format")."""

import re

import pytest

from dlfs.course.registry import built_topics

HINT_TITLES = {1: "direction", 2: "pseudocode", 3: "the tricky details"}
ANSWER_OPEN = "<details><summary>Answer</summary>"
ANSWER_CLOSE = "</details>"
INTRO = "Try each one out loud before opening the answer."


def hint_problems(text: str, level: int) -> list[str]:
    """What is wrong with hint ``level``'s Markdown (empty list: nothing)."""
    lines = text.split("\n")
    heading = f"# Hint {level} — {HINT_TITLES[level]}"
    problems = []
    if lines[0] != heading:
        problems.append(f"first line should be {heading!r}, got {lines[0]!r}")
    if len(lines) < 3 or lines[1] != "" or not lines[2].strip():
        problems.append("the heading should be followed by one blank line and then the hint")
    return problems


def question_problems(text: str, number: int) -> list[str]:
    """What is wrong with Topic ``number``'s questions.md (empty list: nothing).

    Expected: ``# Topic NN — Interview questions``, a blank line, the intro sentence, then
    questions ``### k. …`` numbered 1, 2, … each followed by a blank line, the opening
    ``<details><summary>Answer</summary>``, a blank line, a non-empty answer and ``</details>``.
    Between answers only blank lines.
    """
    lines = text.rstrip("\n").split("\n")
    problems = []
    header = [f"# Topic {number:02d} — Interview questions", "", INTRO]
    if lines[:3] != header:
        problems.append(f"should start with {header!r}, got {lines[:3]!r}")
    expected_n, i = 1, 3
    while i < len(lines):
        line = lines[i]
        if line == "":
            i += 1
            continue
        m = re.match(r"### (\d+)\. \S", line)
        if not m:
            problems.append(f"line {i + 1}: expected a question '### {expected_n}. …', got {line!r}")
            break
        if int(m.group(1)) != expected_n:
            problems.append(f"line {i + 1}: question numbered {m.group(1)}, expected {expected_n}")
        if lines[i + 1:i + 4] != ["", ANSWER_OPEN, ""]:
            problems.append(f"line {i + 1}: a question must be followed by a blank line, "
                            f"{ANSWER_OPEN!r} and a blank line")
            break
        try:
            end = lines.index(ANSWER_CLOSE, i + 4)
        except ValueError:
            problems.append(f"line {i + 1}: the answer is never closed with {ANSWER_CLOSE!r}")
            break
        answer = lines[i + 4:end]
        if not any(s.strip() for s in answer):
            problems.append(f"line {i + 1}: question {expected_n} has an empty answer")
        if any(s.startswith("### ") or s == ANSWER_OPEN for s in answer):
            problems.append(f"line {i + 1}: question {expected_n}'s answer is not closed before the next one")
        expected_n += 1
        i = end + 1
    if expected_n == 1 and not problems:
        problems.append("no questions found")
    return problems


@pytest.mark.parametrize("topic", built_topics(), ids=lambda t: t.id)
def test_hints_follow_the_format(topic):
    for level in (1, 2, 3):
        path = topic.hint(level)
        assert path.exists(), f"Topic {topic.id}: {path} is missing"
        problems = hint_problems(path.read_text(), level)
        assert not problems, f"{path}: " + "; ".join(problems)


@pytest.mark.parametrize("topic", built_topics(), ids=lambda t: t.id)
def test_questions_follow_the_format(topic):
    path = topic.folder / "questions.md"
    assert path.exists(), f"Topic {topic.id}: {path} is missing"
    problems = question_problems(path.read_text(), topic.number)
    assert not problems, f"{path}: " + "; ".join(problems)


GOOD = f"""# Topic 05 — Interview questions

{INTRO}

### 1. Why?

{ANSWER_OPEN}

Because.
{ANSWER_CLOSE}

### 2. How?

{ANSWER_OPEN}

Like this.
{ANSWER_CLOSE}
"""


def test_the_checks_accept_the_format_and_reject_other_layouts():
    assert question_problems(GOOD, 5) == []
    assert hint_problems("# Hint 2 — pseudocode\n\n```\nx\n```\n", 2) == []
    # the other layout once used by some topics: numbered bold questions, no intro
    old = (f"# Topic 05 — interview questions\n\n1. **Why?**\n{ANSWER_OPEN}\nBecause.\n"
           f"{ANSWER_CLOSE}\n")
    assert question_problems(old, 5)
    assert question_problems(GOOD.replace("### 2.", "### 3."), 5)           # numbering
    assert question_problems(GOOD.replace("Like this.\n", ""), 5)            # empty answer
    assert question_problems(GOOD.replace(f"Because.\n{ANSWER_CLOSE}", "Because."), 5)  # unclosed
    assert question_problems(GOOD, 6)                                         # wrong topic number
    assert hint_problems("Every function has the same shape ...\n", 1)      # no heading
    assert hint_problems("# Hint 1 — pseudocode\n\ntext\n", 1)              # wrong title
