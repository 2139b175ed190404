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

from ..io.hashing import file_digest

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


def load_image_processor(
    model_id: str, *, revision: str | None = None, subfolder: str | None = None
):
    """The model's image processor, on its PIL backend.

    transformers 5 picks the torchvision backend where torchvision is installed (GPU machines) and
    falls back to PIL elsewhere; the two differ by about one grey level. Asking for PIL everywhere
    makes a score the same on a laptop and on a GPU node, and PIL's bicubic resize is what the
    reference implementations (OpenAI CLIP, the aesthetic predictors) were trained with.
    """
    import transformers
    from transformers import AutoImageProcessor

    major = int(transformers.__version__.split(".")[0])
    extra = {"backend": "pil"} if major >= 5 else {"use_fast": False}
    processor, _ = load(
        AutoImageProcessor, model_id, revision=revision, subfolder=subfolder, **extra
    )
    return processor


def fetch_file(spec: str | os.PathLike | dict) -> tuple[Path, dict]:
    """A weights file that is not a ``from_pretrained`` folder (e.g. an MLP head), on local disk.

    ``spec`` is one of
    - a local path (str or ``{"path": ...}``);
    - ``{"repo", "filename", "revision"[, "repo_type", "subfolder"]}``: a file of a Hub repo,
      through ``huggingface_hub.hf_hub_download`` (its cache, ``HF_TOKEN``, ``HF_HUB_OFFLINE``);
      pin ``revision`` to a commit;
    - ``{"url"[, "sha256"]}``: a plain download (e.g. a GitHub raw URL at a commit), cached under
      ``torch.hub.get_dir()/checkpoints/clipsift/``; ``sha256`` is checked when given.

    Returns the path and a record (source, asked and resolved revision, sha256 of the file).
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = {"path": os.fspath(spec)}
    spec = {k: v for k, v in dict(spec).items() if v is not None}
    if spec.get("path"):
        path = Path(spec["path"]).expanduser()
        if not path.is_file():
            raise RuntimeError(f"weights file {path} does not exist")
        record = {"path": str(path)}
    elif spec.get("repo") and spec.get("filename"):
        path, record = _hub_file(spec)
    elif spec.get("url"):
        path, record = _url_file(spec["url"], spec.get("sha256"))
    else:
        raise RuntimeError(
            f"cannot tell where the weights file is: {spec!r}; give a local path, "
            "{repo, filename, revision} or {url}"
        )
    record["sha256"] = file_sha256(path)
    if spec.get("sha256") and record["sha256"] != spec["sha256"]:
        raise RuntimeError(
            f"{path}: sha256 {record['sha256']} is not the pinned {spec['sha256']}; "
            "the file changed or the pin is wrong"
        )
    return path, record


def _hub_file(spec: dict) -> tuple[Path, dict]:
    from huggingface_hub import hf_hub_download

    filename = spec["filename"]
    if spec.get("subfolder"):
        filename = f"{spec['subfolder'].strip('/')}/{filename}"
    try:
        path = Path(
            hf_hub_download(
                spec["repo"],
                filename,
                revision=spec.get("revision"),
                repo_type=spec.get("repo_type", "model"),
            )
        )
    except Exception as exc:  # noqa: BLE001 - every download failure gets the same advice
        raise RuntimeError(
            f"cannot download {filename!r} from {spec['repo']!r} (revision "
            f"{spec.get('revision')}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
            "Check the repo, file and revision, that the machine reaches the Hub (or the file is in "
            "the local cache, HF_HUB_OFFLINE=1), and HF_TOKEN for gated repos; or point to a local "
            "copy of the file instead."
        ) from None
    # the cache layout is {cache}/{repo}/snapshots/{commit}/{filename}: the commit it resolved to
    depth = len(Path(filename).parts)
    commit = path.parts[-depth - 1] if len(path.parts) > depth else None
    record = {
        "repo": spec["repo"],
        "filename": filename,
        "revision": spec.get("revision"),
        "resolved_revision": commit,
    }
    return path, record


def _url_file(url: str, sha256: str | None) -> tuple[Path, dict]:
    import torch

    name = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "weights"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    dest = Path(torch.hub.get_dir()) / "checkpoints" / "clipsift" / key / name
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{name}.{os.getpid()}.part")
        try:
            torch.hub.download_url_to_file(url, os.fspath(tmp), progress=False)
            os.replace(tmp, dest)
        except Exception as exc:  # noqa: BLE001
            tmp.unlink(missing_ok=True)
            raise RuntimeError(
                f"cannot download {url}: {exc}. Download it by hand and set the local path "
                "instead (head_path)."
            ) from None
    return dest, {"url": url}


def file_sha256(path: str | os.PathLike) -> str:
    return file_digest(path)


def load_state_dict(path: str | os.PathLike) -> dict:
    """Tensors of a ``.safetensors`` file, or of a torch pickle loaded with ``weights_only=True``
    (never a full unpickle). A checkpoint that wraps them in ``state_dict`` is unwrapped."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(os.fspath(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(
            f"cannot load {path} as tensors with weights_only=True ({str(exc).splitlines()[0]}); "
            "only plain state dicts are accepted"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise RuntimeError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj
