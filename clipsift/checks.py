"""Cross-field config checks: one validation step after the schema's, when the Snakefile is
parsed (rules/common.smk). Each says what is wrong and what to do, before any job runs; the
checks themselves live beside the code whose assumptions they guard."""

from __future__ import annotations

from .config import ConfigError, with_defaults


def cross_checks(config: dict) -> None:
    """Raise :class:`ConfigError` for a config the schema accepts but the pipeline cannot run
    (or would run into silently wrong data)."""
    from .manifests import ManifestConfigError
    from .manifests import check_config as check_manifests
    from .selection import ThresholdError, check_thresholds
    from .streaming import StreamingConfigError
    from .streaming import check_config as check_streaming

    try:
        check_thresholds(config)
        check_manifests(config)
        check_streaming(config)
        check_near_duplicates(config)
        check_export(config)
        check_split(config)
    except (ThresholdError, ManifestConfigError, StreamingConfigError) as exc:
        raise ConfigError(str(exc)) from None


def check_near_duplicates(config: dict) -> None:
    from .scorers import REGISTRY

    nd = config.get("near_duplicates") or {}
    if not nd.get("enabled"):
        return
    scorers = config.get("scorers") or {}
    on = sorted(n for n, c in scorers.items() if (c or {}).get("enabled"))
    models = [n for n in on if "embeddings" in getattr(REGISTRY.get(n), "gives", ())]
    if nd.get("embeddings") not in models:
        raise ConfigError(
            f"near_duplicates.embeddings: {nd.get('embeddings')!r} is not an enabled scorer "
            f"that writes embeddings (enabled: {', '.join(models) or 'none'}; those that write "
            f"them: {', '.join(n for n, p in sorted(REGISTRY.items()) if 'embeddings' in p.gives)})"
        )
    best = nd.get("keep_best_by")
    if best and best.split(".")[0] not in on:
        raise ConfigError(
            f"near_duplicates.keep_best_by: {best!r} is not a column of an enabled scorer "
            "({scorer}.{column}, e.g. aesthetic.score)"
        )


def check_export(config: dict) -> None:
    export = with_defaults("export", config.get("export"))
    if export["webdataset"]["enabled"] and not export["clips"]:
        raise ConfigError(
            "export.webdataset.enabled needs export.clips: true (the tars hold the clip files)"
        )


def check_split(config: dict) -> None:
    split = with_defaults("split", config.get("split"))
    if split["mode"] == "scenes" and split["min_seconds"] > split["max_seconds"]:
        raise ConfigError(
            f"split.min_seconds ({split['min_seconds']:g}) is more than split.max_seconds "
            f"({split['max_seconds']:g}): every window of a long shot would be too short; "
            "lower min_seconds or raise max_seconds"
        )
