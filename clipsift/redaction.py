"""Secrets out of everything clipsift writes: one home for redaction.

Tokens and API keys are read from the environment and sent in headers only. As a second line of
defence their values (and anything shaped like a key) are replaced by ``[redacted]`` in logs,
error records, ``caption.json``, provenance and publish errors.
"""

from __future__ import annotations

import json
import re

REDACTED = "[redacted]"
MIN_SECRET = 4  # shorter values would redact ordinary words
KEYLIKE = re.compile(r"\b(?:sk|pk|rk|or|key|tok|token|bearer)[-_][A-Za-z0-9_\-*.]{8,}", re.I)


def scrub(text: str, values) -> str:
    """``text`` without any of ``values`` (the longest first, so a value inside another goes too)."""
    text = str(text)
    for v in sorted((v for v in values if v and len(v) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(v, REDACTED)
    return text


def redact(text: str, values=()) -> str:
    """``text`` without ``values`` and without anything that looks like an API key."""
    return KEYLIKE.sub(REDACTED, scrub(text, values))


def redact_json(obj, values):
    """A JSON-able object with ``values`` removed from every string in it (the same object when
    none occurs)."""
    from .io.hashing import canonical_json

    values = [v for v in values if v and len(v) >= MIN_SECRET]
    if not values:
        return obj
    text = canonical_json(obj)
    if not any(v in text for v in values):
        return obj
    return json.loads(scrub(text, values))
