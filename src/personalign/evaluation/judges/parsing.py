"""Reading judge outputs: a 1-5 score (`parse_score`) and a pairwise verdict (`parse_pairwise_verdict`).

Both are pure functions, tolerant of the ways LLM judges answer (markup, reasoning before the answer, echoed rubric
lines, the template's placeholder), with their rules in their docstrings. An output with no score or verdict gives
`None`: the judges count it as unparsable and never guess.
"""

from __future__ import annotations

import re
from typing import Literal

Verdict = Literal["A", "B", "tie"]
"""A pairwise verdict as shown to the judge: the first response (A), the second (B), or a tie."""

_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
# A number (digits or a word), not glued to a word and not the start of a range ("1-5", "1 to 5").
_NUM = r"(\d+(?:\.\d+)?|(?:" + "|".join(_NUMBER_WORDS) + r"))(?!\w)(?!\s*(?:-|–|to)\s*\d)"
_MARKUP = r"[\s*_`\"'“”]*"
_SUBJECT = r"(?:it|this|this response|the response)"
# A score marker names the score explicitly; the number follows it. "[RESULT] 4", "Score: 4", "**Score:** 4/5",
# "score of 4", "Rating = 4", "I rate it 4", "[[4]]", "4/5", "4 out of 5". "Score 1: ..." (a rubric line echoed
# back) is no marker: a separator must come between the word and the number.
_SCORE_MARKERS = [
    re.compile(r"\[\s*RESULT\s*\]" + _MARKUP + r"[:=]?" + _MARKUP + _NUM, re.IGNORECASE),
    re.compile(r"\b(?:score|rating|grade|result)s?\b" + _MARKUP + r"(?:is|of|[:=\-])" + _MARKUP + _NUM, re.IGNORECASE),
    re.compile(
        r"\b(?:(?:rate|rated)\s+(?:" + _SUBJECT + r"\s+)?|(?:give|gave|assign|assigned)\s+" + _SUBJECT + r"\s+)"
        r"(?:an?\s+|as\s+)?(?:score\s+of\s+)?" + _NUM,
        re.IGNORECASE,
    ),
    re.compile(r"\[\[\s*" + _NUM + r"\s*\]\]"),
]
_FRACTION = re.compile(r"(?<![\w.])" + _NUM + r"\s*(?:/|out of)\s*(\d+)(?!\w)", re.IGNORECASE)
_RANGE = re.compile(r"\d+\s*(?:-|–|to)\s*\d+")
_ANY_FRACTION = re.compile(r"\d+(?:\.\d+)?\s*(?:/|out of)\s*\d+")
_ENUMERATION = re.compile(r"^\s*\d+[.)]\s", re.MULTILINE)
_STANDALONE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w]|\.\d)")
_BARE_STRIP = " \t\r\n*_`\"'“”.!#:[]()"


def _as_score(token: str, low: int, high: int) -> int | None:
    token = token.lower()
    if token in _NUMBER_WORDS:
        value = float(_NUMBER_WORDS[token])
    else:
        try:
            value = float(token)
        except ValueError:
            return None
    if not value.is_integer() or not low <= value <= high:
        return None
    return int(value)


def parse_score(text: str | None, low: int = 1, high: int = 5) -> int | None:
    """Read an integer score in `[low, high]` from a judge's output, or `None` when there is none.

    Rules, in order (the first that yields a score decides):

    1. **Markers**: the *last* marked score in range: `[RESULT] n` (Prometheus), `Score: n` / `Rating: n` /
       `score of n` / `score is n` (markdown around the word or the number is ignored), `rate it n`, `[[n]]`,
       `n/high` and `n out of high` (a fraction with another denominator, such as `8/10` on a 1-5 scale, is
       skipped). `Score 1: ...` (a rubric line echoed back) and `score of 1-5` (a range) are not markers.
    2. **Bare answer**: the output is a single number once markup is stripped (`"4"`, `"**4**."`).
    3. **Last number**: the last standalone integer in range, not counting list numbering at a line start (`1.`,
       `2)`), ranges (`1-5`, `1 to 5`) and decimals.

    Non-integers (`4.5`) and numbers out of range are never scores; number words (`four`) count after a marker.

    Args:
        text (`str`): The judge output.
        low (`int`, *optional*, defaults to `1`): Lowest valid score.
        high (`int`, *optional*, defaults to `5`): Highest valid score.

    Returns:
        `int` or `None`
    """
    if not text:
        return None
    best: tuple[int, int] | None = None  # (end position, score) of the last marked score
    marked = [(match, match.group(1)) for pattern in _SCORE_MARKERS for match in pattern.finditer(text)]
    # An "n/d" or "n out of d" fraction is a marker only on the judge's own scale.
    marked += [(m, m.group(1)) for m in _FRACTION.finditer(text) if int(m.group(2)) == high]
    for match, token in marked:
        score = _as_score(token, low, high)
        if score is not None and (best is None or match.end() > best[0]):
            best = (match.end(), score)
    if best is not None:
        return best[1]
    bare = text.strip(_BARE_STRIP)
    if re.fullmatch(r"\d+(?:\.\d+)?", bare):
        return _as_score(bare, low, high)
    cleaned = _ENUMERATION.sub(" ", _ANY_FRACTION.sub(" ", _RANGE.sub(" ", text)))
    candidates = [_as_score(match.group(1), low, high) for match in _STANDALONE.finditer(cleaned)]
    candidates = [score for score in candidates if score is not None]
    return candidates[-1] if candidates else None


_QUOTE = "\"'“”‘’"
_JSON_CHOICE = re.compile(
    r"[" + _QUOTE + r"]?choice[" + _QUOTE + r"]?\s*:\s*[" + _QUOTE + r"]([^" + _QUOTE + r"\n]*)[" + _QUOTE + r"]",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"\[\[\s*(?:response\s+)?(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_VERDICT_PHRASES = [
    # "Choice: B", "Final verdict: **Response A**", "The answer is Tie", "Winner - B". Bare letters must be upper
    # case here ("answer is a bit long" is no verdict); after "Response" any case goes.
    re.compile(
        r"\b(?i:choice|verdict|answer|winner|decision|preference|preferred response|better response|output)\b"
        r"[\s*_`\"'“”]*(?i:is|:|=|-)?[\s*_`\"'“”]*(?:(?i:response)\s+(?P<r>[aAbB])|(?P<l>[AB])|(?P<t>(?i:tie)))\b"
    ),
    # "Response A is better", "response b is preferred", "Response B better matches"
    re.compile(
        r"\bresponse\s+(?P<r>[ab])\b[\s*_]*(?:is|was)?\s*(?:clearly\s+|slightly\s+|much\s+)?"
        r"(?:better|preferred|superior|more aligned|more suitable|the better)",
        re.IGNORECASE,
    ),
    # "I prefer Response B", "I choose response a"
    re.compile(r"\b(?:prefer|choose|chose|pick|select)s?\s+(?:the\s+)?response\s+(?P<r>[ab])\b", re.IGNORECASE),
    # "It's a tie", "This is a tie", "Tie." on a line of its own
    re.compile(r"(?:\b(?:a|is)\s+(?P<t>tie)\b|^[\s*_#`\"']*(?P<t2>tie)[\s*_`\"'.!]*$)", re.IGNORECASE | re.MULTILINE),
]
_BOLD = re.compile(r"\*\*\s*(?:response\s+)?(A|B|tie)\s*\*\*", re.IGNORECASE)
_MENTIONS = {
    "A": re.compile(r"\bresponse\s+a\b", re.I),
    "B": re.compile(r"\bresponse\s+b\b", re.I),
    "tie": re.compile(r"\btie\b", re.I),
}


def _normalize_verdict(value: str) -> Verdict | None:
    value = re.sub(r"[\s*_`\[\]().!:]+", " ", value).strip().lower()
    if "/" in value:  # the template's placeholder echoed back: "Response A/Response B/Tie"
        return None
    value = re.sub(r"^(?:response|output|assistant)\s*", "", value)
    if value in ("a", "b"):
        return value.upper()  # type: ignore[return-value]
    if value in ("tie", "c", "draw", "equal", "both", "neither"):
        return "tie"
    return None


def parse_pairwise_verdict(text: str | None) -> Verdict | None:
    """Read a pairwise verdict (`"A"`, `"B"` or `"tie"`) from a judge's output, or `None` when there is none.

    Rules, in order (the first level that yields a verdict decides; within a level, the *last* match wins, since
    judges reason first and conclude last):

    1. **JSON**: `"choice": "Response A" | "Response B" | "Tie"` (the AlignX format; any quote style, any case; also
       `"A"`, `"B"`). The placeholder echoed back (`"[Response A/Response B/Tie]"`) is no verdict.
    2. **Brackets**: `[[A]]`, `[[B]]`, `[[Tie]]`, `[[C]]` (MT-Bench's tie).
    3. **Verdict phrases**: `Choice: B`, `Final verdict: **Response A**`, `The answer is Tie`, `Response B is
       better`, `I prefer Response A`, `It's a tie`, or `Tie` alone on a line. A bare letter must be upper case
       (the article "a" is no verdict); after "Response" any case goes.
    4. **Bold**: `**A**`, `**Response B**`, `**Tie**`, only when all bold verdicts agree.
    5. **Bare answer**: the whole output, markup stripped, is `A`, `B`, `Response A`, `Response B` or `Tie`.
    6. **Single mention**: exactly one of "Response A", "Response B", "tie" is mentioned.

    Args:
        text (`str`): The judge output.

    Returns:
        `"A"`, `"B"`, `"tie"` or `None`.
    """
    if not text:
        return None
    for pattern in (_JSON_CHOICE, _BRACKETED):
        verdicts = [_normalize_verdict(m.group(1)) for m in pattern.finditer(text)]
        verdicts = [v for v in verdicts if v is not None]
        if verdicts:
            return verdicts[-1]
    found: list[tuple[int, Verdict]] = []
    for pattern in _VERDICT_PHRASES:
        for match in pattern.finditer(text):
            value = next(v for v in match.groupdict().values() if v is not None)
            verdict = _normalize_verdict(value)
            if verdict is not None:
                found.append((match.end(), verdict))
    if found:
        return max(found)[1]
    bold = {_normalize_verdict(m.group(1)) for m in _BOLD.finditer(text)} - {None}
    if len(bold) == 1:
        return bold.pop()
    bare = _normalize_verdict(re.sub(r"[\s*_`\"'“”#]+", " ", text))
    if bare is not None:
        return bare
    mentioned = [verdict for verdict, pattern in _MENTIONS.items() if pattern.search(text)]
    return mentioned[0] if len(mentioned) == 1 else None  # type: ignore[return-value]
