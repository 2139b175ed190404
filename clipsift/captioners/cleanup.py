"""Caption clean-up: boilerplate openings, whitespace, unfinished trailing sentences.

VLMs start most captions with a formula ("The video shows ...", "In this video, ...", "This clip
depicts ..."). Trained on such captions, a video model learns to expect the formula in prompts, so
we cut it and capitalise what is left: "The video shows a dog running" -> "A dog running".
"""

from __future__ import annotations

import re

_SUBJECT = (
    r"(?:the|this|that|a|an)\s+(?:short\s+|brief\s+|given\s+|provided\s+)?"
    r"(?:video(?:\s+clip)?|clip|footage|scene|sequence|frames?|image|shot|animation)"
)
_VERB = (
    r"(?:shows|showcases|depicts|features|captures|presents|displays|illustrates|portrays|"
    r"highlights|begins\s+with|opens\s+with|starts\s+with|is\s+of|contains|focuses\s+on|"
    r"appears\s+to\s+show|seems\s+to\s+show)"
)
_OPENINGS = [
    rf"{_SUBJECT}\s+{_VERB}\s*:?\s*",  # The video shows ...
    rf"in\s+{_SUBJECT}\s*,?\s*(?:we\s+(?:see|can\s+see|observe)\s*)?",  # In this video, ...
    rf"{_SUBJECT}\s+(?:is|was)\s+(?:a|an)\s+",  # This clip is a ...  -> keeps the noun
    r"(?:here\s+)?(?:we\s+(?:see|can\s+see|observe)|you\s+can\s+see|there\s+is|there\s+are)\s+",
    r"(?:certainly|sure|okay|of\s+course)[!.,]?\s+(?:here\s+is\s+(?:a|the)\s+(?:detailed\s+)?"
    r"(?:description|caption)[^:]*:\s*)?",
    r"(?:here\s+is\s+(?:a|the)\s+(?:detailed\s+)?(?:description|caption)[^:]*:\s*)",
    r"(?:caption|description)\s*:\s*",
]
_OPENING_RE = re.compile(r"^\s*(?:" + "|".join(_OPENINGS) + ")", re.IGNORECASE)
_KEEP_ARTICLE = re.compile(rf"^\s*{_SUBJECT}\s+(?:is|was)\s+(a|an)\s+", re.IGNORECASE)


def strip_openings(text: str) -> str:
    """Remove boilerplate openings (repeatedly: "Sure! The video shows ...")."""
    for _ in range(3):
        m = _KEEP_ARTICLE.match(text)
        if m:  # "This clip is a timelapse of ..." -> "A timelapse of ..."
            text = m.group(1) + " " + text[m.end() :]
            continue
        new = _OPENING_RE.sub("", text, count=1)
        if new == text:
            break
        text = new
    return text


def clean_caption(
    text: str | None, *, strip_boilerplate: bool = True, drop_unfinished: bool = True
):
    """The caption as stored: boilerplate cut, whitespace collapsed, first letter capitalised,
    and a trailing sentence cut off by the token limit dropped (when others are left)."""
    if text is None:
        return None
    text = " ".join(text.replace("\u0000", " ").split())
    text = text.strip(" \"'`")
    if strip_boilerplate:
        text = strip_openings(text)
    if drop_unfinished and text and text[-1] not in ".!?\"')":
        cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
        if cut > len(text) // 3:  # keep a caption that would lose most of itself
            text = text[: cut + 1]
    if text:
        text = text[0].upper() + text[1:]
    return text
