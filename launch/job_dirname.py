"""Sweep job folders named by their overrides, kept within the file system's name limit.

Hydra names a multirun job's folder by its overrides (``hydra.job.override_dirname``), which
is what makes a fixed ``hydra.sweep.dir`` resumable. A sweep with many overrides gives a
name over 255 bytes, which no common file system takes (``OSError: File name too long``).
Such a name is cut at an override boundary and ended with a hash of the whole name, so it
stays unique and the same on every rerun; shorter names are left exactly as they were.
"""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf

RESOLVER = "fedntc_job_dir"
NAME_MAX_BYTES = 255  # ext4, xfs, btrfs, APFS, NTFS (in UTF-16 units: smaller than this)
HASH_CHARS = 16


def job_dirname(override_dirname: str, limit: int = NAME_MAX_BYTES) -> str:
    """Return ``override_dirname`` if it fits in ``limit`` bytes, else a cut name plus a hash."""
    if len(override_dirname.encode()) <= limit:
        return override_dirname
    digest = hashlib.sha256(override_dirname.encode()).hexdigest()[:HASH_CHARS]
    tail = f",hash={digest}"
    budget = limit - len(tail.encode())
    kept: list[str] = []
    used = 0
    for part in override_dirname.split(","):
        cost = len(part.encode()) + (1 if kept else 0)
        if used + cost > budget:
            break
        kept.append(part)
        used += cost
    head = ",".join(kept) or override_dirname.encode()[:budget].decode(errors="ignore")
    return head + tail


def register_resolver() -> None:
    """Make ``${fedntc_job_dir:...}`` available to the Hydra config (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, job_dirname)
