"""Follow-up questions into standalone search queries. Pure.

"And how do I undo that?" means nothing to a retriever: the words that say what "that" is are in
the conversation's earlier questions. Two ways to recover them:

* `lexical_rewrite` (no model; the embedded default and the fallback when a model fails): a
  question that looks like a follow-up gets the key words of the previous question(s) appended.
* `build_rewrite_messages` + `clean_rewritten_query`: the prompt for a language model that
  rewrites the question, and the check of what it wrote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from ragplatform.domain.models import Role, Turn
from ragplatform.domain.prompts import ChatMessage
from ragplatform.domain.text_matching import STOPWORDS, content_words, words

#: Most key words `lexical_rewrite` appends (more drowns the question's own words).
MAX_ADDED_WORDS = 10
#: Earlier questions `lexical_rewrite` looks through (a chain of follow-ups: "and on the X2?").
MAX_EARLIER_QUESTIONS = 3
#: Questions with fewer content words than this are treated as follow-ups ("Why?", "And the fee?").
MIN_STANDALONE_WORDS = 3

# Words that point back at something said before.
_REFERRING_TEXT = """it its it's itself that this these those they them their theirs there he him his she her
    one ones same such former latter above previous aforementioned also else instead too either"""
_REFERRING: Final[frozenset[str]] = frozenset(_REFERRING_TEXT.split())
# Openings that continue the previous question ("and ...", "what about ...").
_CONTINUATIONS: Final[tuple[str, ...]] = (
    "and ",
    "or ",
    "but ",
    "also ",
    "so ",
    "then ",
    "what about ",
    "how about ",
    "what if ",
)
_SURFACE_WORD = re.compile(r"[^\W_]+(?:[-'\u2019.:][^\W_]+)*")


def is_follow_up(question: str) -> bool:
    """True when `question` probably depends on what was asked before: it refers back ("it",
    "that", "those" ...), continues the previous question ("and ...", "what about ..."), or has
    too few content words to stand alone."""
    lowered = " ".join(question.lower().split())
    if lowered.startswith(_CONTINUATIONS):
        return True
    question_words = words(question)
    if any(w in _REFERRING for w in question_words):
        return True
    return len({w for w in question_words if w not in STOPWORDS}) < MIN_STANDALONE_WORDS


def lexical_rewrite(question: str, history: Sequence[Turn]) -> str:
    """`question` with the key words of the previous question(s) appended when it looks like a
    follow-up (see `is_follow_up`), else `question` unchanged (stripped).

    Key words are the earlier questions' non-stopwords, as written ("Zephyr-9" stays one word),
    newest question first, each once, none the question already has, at most `MAX_ADDED_WORDS`.
    When the previous question was itself a follow-up, the one before it is used too (up to
    `MAX_EARLIER_QUESTIONS`). Assistant turns are not used: answers are long and would drown the
    question."""
    question = " ".join(question.split())
    earlier = [t.content for t in reversed(history) if t.role == Role.USER and t.content.strip()]
    if not earlier or not is_follow_up(question):
        return question
    seen = {w for w in words(question)}
    added: list[str] = []
    for previous in earlier[:MAX_EARLIER_QUESTIONS]:
        for surface in _SURFACE_WORD.findall(previous):
            key = words(surface)[0] if words(surface) else ""
            if key and key not in STOPWORDS and key not in seen and len(added) < MAX_ADDED_WORDS:
                seen.add(key)
                added.append(surface)
        if not is_follow_up(previous):
            break
    return f"{question} {' '.join(added)}" if added else question


#: What the model is asked to do; the reply is checked by `clean_rewritten_query`.
REWRITE_SYSTEM_PROMPT = (
    "You rewrite the user's last question into one standalone search query for a document search "
    "engine. Use the conversation to replace words like 'it', 'that' or 'those' with what they refer "
    "to, and keep every name, number and technical term. If the question already stands alone, repeat "
    "it unchanged. Reply with the query only: no answer, no explanation, no quotes."
)
#: Characters of an earlier answer shown to the model (enough to say what "that" is).
REWRITE_ANSWER_CHARS = 300


def build_rewrite_messages(question: str, history: Sequence[Turn], max_turns: int = 6) -> list[ChatMessage]:
    """The chat messages asking a model to rewrite `question`: the instructions, then the last
    `max_turns` turns (answers shortened to `REWRITE_ANSWER_CHARS`) and the question as one
    transcript, so the model rewrites rather than answers."""
    lines = []
    for turn in list(history)[-max_turns:]:
        if turn.role == Role.USER:
            lines.append(f"User: {' '.join(turn.content.split())}")
        else:
            answer = " ".join(turn.content.split())
            if len(answer) > REWRITE_ANSWER_CHARS:
                answer = answer[:REWRITE_ANSWER_CHARS].rsplit(" ", 1)[0] + " ..."
            lines.append(f"Assistant: {answer}")
    transcript = "\n".join(lines)
    return [
        {"role": "system", "content": REWRITE_SYSTEM_PROMPT},
        {
            "role": "user",
            "content": f"Conversation:\n{transcript}\n\nLast question: {' '.join(question.split())}\n\n"
            "Standalone search query:",
        },
    ]


_LABEL = re.compile(r"^\s*(?:standalone\s+)?(?:search\s+)?(?:query|question)\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"


def clean_rewritten_query(reply: str, question: str, max_chars: int = 1000) -> str:
    """The query in a model's `reply`: its first non-empty line, without a "Query:" label or
    surrounding quotes. "" when the reply is unusable, so the caller falls back: empty; longer
    than `max_chars` or five times the question plus 200 characters (the model answered instead of
    rewriting); or keeping fewer than half of the question's own content words (a small model
    echoing an earlier turn: "And what is its impeller made of?" must keep "impeller")."""
    for line in reply.splitlines():
        text = _LABEL.sub("", line).strip().strip(_QUOTES).strip()
        if not text:
            continue
        if len(text) > min(max_chars, 5 * len(question) + 200):
            return ""
        own = content_words(question)
        if len(own & content_words(text)) < len(own) // 2:
            return ""
        return " ".join(text.split())
    return ""
