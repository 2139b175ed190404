"""Keep secrets out of logs and outputs.

API keys (and the Hub token) live in environment variables. The clients put them in request
headers only; as a second line of defence the caption job redacts their values from every log
record (a filter on the root logger's handlers) and from ``caption.json`` before writing it.
"""

from __future__ import annotations

import logging
import os

from ..redaction import redact, scrub
from .http import DEFAULT_KEY_ENVS

HUB_TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def secret_envs(cfg: dict) -> list[str]:
    """Names of the variables that may hold secrets for this caption config."""
    names = [*DEFAULT_KEY_ENVS, *HUB_TOKEN_ENVS]
    for api in (cfg.get("api") or {}, ((cfg.get("rewrite") or {}).get("api") or {})):
        if api.get("key_env"):
            names.append(api["key_env"])
    return list(dict.fromkeys(names))


def secret_values(cfg: dict) -> list[str]:
    vals = [os.environ.get(n, "").strip() for n in secret_envs(cfg)]
    return sorted({v for v in vals if len(v) >= 4}, key=len, reverse=True)


class SecretFilter(logging.Filter):
    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def redact(self, text: str) -> str:
        return redact(scrub(str(text), self.values), self.values)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.values:
            msg = record.getMessage()
            clean = scrub(msg, self.values)
            if clean != msg:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[1] is not None:
                text = scrub(logging.Formatter().formatException(record.exc_info), self.values)
                record.exc_info, record.exc_text = None, text
        return True

    @classmethod
    def install(cls, cfg: dict) -> SecretFilter:
        """A filter with this config's secret values, on every handler of the root logger."""
        flt = cls(secret_values(cfg))
        for handler in logging.getLogger().handlers:
            handler.addFilter(flt)
        return flt
