"""What a text claims, read by rules: the facts it names (numbers, colours, shapes, names) and,
for every clause, whether it asserts or denies what it names.

An answer is split into clauses (at sentence ends, commas, semicolons and connectives such as
"so", "but", "and"); a clause with a negator anywhere in it ("not", "no", "n't", "never",
"without", "absent", ...) denies its content words, any other clause asserts them. A leading
"yes" or "no" replies to the question: "yes" asserts the question's statement as asked
("Is there not a blue shape?" "Yes." denies a blue shape), "no" reverses it. Two texts make
the same claims when every content word they share is asserted or denied in the same way.

The reader is deliberately strict: a rewrite it cannot read as saying the same thing is
refused, never let through.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

# fmt: off
COLOURS = frozenset((
    "red", "green", "blue", "black", "white", "gray", "grey", "yellow", "teal", "brown",
    "orange", "purple", "pink", "violet", "cyan", "magenta", "gold", "silver", "beige", "maroon",
    "navy",
))
SHAPES = frozenset((
    "circle", "circles", "rectangle", "rectangles", "square", "squares", "triangle", "triangles",
    "oval", "ovals", "star", "stars", "hexagon", "hexagons", "diamond", "diamonds",
))
NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}
# Words that carry no claim of their own: function words, and the words every answer about
# an image uses ("the image shows", "there is a shape") whatever it claims.
STOPWORDS = frozenset("""
    a an the this that these those it its it's they them their there here what which who whom
    whose where when why how is are was were be been being am do does did has have had having
    of in on at to from by with for about into onto over under as than then so and or but if
    because while though although whereas however therefore also too very just only really
    can could may might must shall should will would i you he she we me my your his her our
    image images picture pictures photo photos photograph scene shape shapes object objects
    thing things one shown show shows showing see seen sees visible appear appears appearing
    contain contains containing contained present display displays displayed depict depicts
    depicted mean means meaning indeed yes well some any other else another same such
    single sole exactly clearly
""".split())
NEGATORS = frozenset("""
    not no none never nothing nobody nowhere neither nor without cannot absent missing lack
    lacks lacking
""".split())
# fmt: on
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:[.,]\d+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_YES_NO = re.compile(r"^\W*(yes|no)\b[\s,.!;:-]*", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(
    r"[.!?;:,]+(?=\s|$)|\n+|\b(?:so|but|and|because|although|though|whereas|while|however"
    r"|therefore|which|meaning)\b",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"(^|[.!?:]\s+|\n)([A-Z][a-z]+)")


@dataclass(frozen=True)
class Claim:
    terms: frozenset[str]  # the content words it asserts or denies
    negated: bool


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def term(word: str) -> str:
    """A word's comparable form: grey -> gray, two -> 2, circles -> circle."""
    word = word.lower().rstrip("'")
    if word == "grey":
        return "gray"
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    if word.endswith("n't"):
        return word
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def numbers(text: str) -> set[str]:
    found = {NUMBER_WORDS[w] for w in words(text) if w in NUMBER_WORDS}
    return found | {n.replace(",", "") for n in _NUMBER.findall(text)}


def colours(text: str) -> set[str]:
    return {term(w) for w in words(text) if w in COLOURS}


def shapes(text: str) -> set[str]:
    return {term(w) for w in words(text) if w in SHAPES}


def entities(text: str) -> set[str]:
    """Capitalised words that do not start a sentence: names of people, places, brands."""
    starts = {m.group(2) for m in _SENTENCE_START.finditer(text)}
    found = {w for w in _WORD.findall(text) if w[0].isupper() and len(w) > 1 and w != "I"}
    return {w for w in found - starts if w.lower() not in COLOURS | SHAPES}


def facts(text: str) -> set[str]:
    """Everything a rewrite may not lose or invent: numbers, colours, shapes, names."""
    return numbers(text) | colours(text) | shapes(text) | {e.lower() for e in entities(text)}


def is_negator(word: str) -> bool:
    return word in NEGATORS or word.endswith("n't")


def negated(text: str) -> bool:
    return any(is_negator(w) for w in words(text))


def polarity(text: str) -> str | None:
    """The leading "yes" or "no" of an answer, if it has one."""
    match = _YES_NO.match(text)
    return match.group(1).lower() if match else None


def content(text: str) -> frozenset[str]:
    return frozenset(
        term(w) for w in words(text) if w not in STOPWORDS and not is_negator(w) and len(w) > 1
    )


def clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_BREAK.split(text) if c and c.strip()]


def read_claims(answer: str, question: str = "") -> list[Claim]:
    """The claims of `answer` (in reply to `question`, which gives a bare yes or no its
    content): one per clause, the reply's yes/no first."""
    found = []
    said = polarity(answer)
    if said is not None:
        asked = question.replace("<image>", "")
        found.append(Claim(content(asked), negated=(said == "no") != negated(asked)))
        answer = answer[_YES_NO.match(answer).end() :]
    for clause in clauses(answer):
        found.append(Claim(content(clause), negated(clause)))
    return found


def stances(claims: Iterable[Claim]) -> dict[str, set[bool]]:
    """term -> how the text treats it: {False} asserted, {True} denied, both when it does both."""
    by_term: dict[str, set[bool]] = defaultdict(set)
    for claim in claims:
        for t in claim.terms:
            by_term[t].add(claim.negated)
    return dict(by_term)


def bare_denials(claims: Iterable[Claim]) -> int:
    """Denials that name nothing ("it is not", "nothing else"): they deny the context."""
    return sum(c.negated and not c.terms for c in claims)


def changed_claim(original: str, rewrite: str, question: str = "") -> str | None:
    """The first word whose claim the rewrite changes (asserted <-> denied), or None when
    every shared word keeps its stance and no denial without content is added."""
    before, after = read_claims(original, question), read_claims(rewrite, question)
    old, new = stances(before), stances(after)
    for word in sorted(old.keys() & new.keys()):
        if old[word] != new[word]:
            return word
    if bare_denials(after) > bare_denials(before):
        return "not"
    return None
