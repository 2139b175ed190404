"""Loading models the way their ecosystem loads them, and recording exactly what was loaded.

``from_pretrained(id_or_path, revision=...)`` with the revision pinned in the config; the
resolved commit (or, for a local folder, a hash of its config files) is recorded in every output.
``trust_remote_code`` stays off unless the config turns it on. Tokens come from the environment
(``HF_TOKEN``) through huggingface_hub itself and are never recorded.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def is_local(model_id: str) -> bool:
    return os.path.isdir(model_id)


def resolved_revision(
    model_id: str, revision: str | None, subfolder: str | None = None, model=None
) -> str:
    """The commit a hub model resolved to, or ``local:<hash>`` of a local folder's config files."""
    if is_local(model_id):
        root = Path(model_id) / (subfolder or "")
        h = hashlib.sha256()
        for p in sorted(root.rglob("*.json")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
        return f"local:{h.hexdigest()[:16]}"
    commit = getattr(getattr(model, "config", None), "_commit_hash", None)
    if commit:
        return commit
    try:  # the local cache knows which commit a ref points to, without a network call
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(
            model_id,
            "config.json" if not subfolder else f"{subfolder}/config.json",
            revision=revision,
        )
        if isinstance(path, str):
            return Path(path).parent.parent.name if subfolder else Path(path).parent.name
    except Exception:  # noqa: BLE001 - the record then says what was asked for
        pass
    return revision or "unknown"


def load(
    cls,
    model_id: str,
    *,
    revision: str | None = None,
    subfolder: str | None = None,
    trust_remote_code: bool = False,
    **kwargs,
):
    """``cls.from_pretrained`` with the pinned revision; returns ``(model, record)``."""
    args = {"revision": revision, "trust_remote_code": trust_remote_code, **kwargs}
    if subfolder:
        args["subfolder"] = subfolder
    if not trust_remote_code:
        args.pop("trust_remote_code")
    try:
        model = cls.from_pretrained(model_id, **args)
    except OSError as exc:
        raise RuntimeError(
            f"cannot load {model_id!r} (revision {revision}): {str(exc).splitlines()[0]}. "
            "Check the id and revision, that the machine reaches the Hub (or the model is in the "
            "local cache / a local folder), and HF_TOKEN for gated models."
        ) from None
    record = {
        "id": model_id,
        "revision": revision,
        "resolved_revision": resolved_revision(model_id, revision, subfolder, model),
    }
    if subfolder:
        record["subfolder"] = subfolder
    return model, record
