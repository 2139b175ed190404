"""SLURM helpers: the job-status command for the profile, and the `slurm` profile's install.

``status_command`` is called by ``profiles/slurm/config.yaml`` (YTE) when Snakemake reads the
profile. The executor plugin asks ``sacct`` for job states by default whenever the binary exists,
but on a cluster without accounting (no slurmdbd) ``sacct`` exists and fails, and the run never
sees a job finish. ``scontrol show config`` says which case this is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "slurm"


def accounting_storage(scontrol: str = "scontrol") -> str | None:
    """The cluster's ``AccountingStorageType`` (e.g. ``accounting_storage/slurmdbd``), or None
    when ``scontrol`` cannot tell."""
    try:
        out = subprocess.run(
            [scontrol, "show", "config"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out, re.M)
    return m.group(1) if m else None


def status_command() -> str:
    """``sacct`` where the cluster keeps job accounting, else ``squeue`` (which needs finished
    jobs to stay visible for a while: SLURM's ``MinJobAge``, 300 s by default)."""
    if not shutil.which("sacct"):
        return "squeue"
    storage = accounting_storage()
    return "squeue" if storage in (None, "accounting_storage/none", "(null)") else "sacct"


def user_profile_dir() -> Path:
    """Where ``snakemake --profile slurm`` looks for a user's profile named ``slurm``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "snakemake" / "slurm"


def install_profile(dest: Path | None = None) -> tuple[Path, str]:
    """Link clipsift's SLURM profile to ``dest`` (the user's ``slurm`` profile folder), so that
    ``snakemake --profile slurm`` finds it from any folder. A profile already there (a site's own)
    is left alone: clipsift's per-rule sizes reach it through the workflow profile anyway.
    Returns the folder and what was done: ``linked``, ``present`` (this link) or ``kept``."""
    dest = dest or user_profile_dir()
    if dest.is_symlink() and dest.resolve() == PROFILE.resolve():
        return dest, "present"
    if dest.exists() or dest.is_symlink():
        return dest, "kept"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.symlink_to(PROFILE, target_is_directory=True)
    return dest, "linked"
