"""Figures of a report, one module per plot family; files only (the Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

COLORS = {
    "personalized": "C0",
    "fedavg": "C1",
    "local": "C2",
    "fedavg_refit": "C3",
    "base": "C4",
    "JPEG": "0.5",
    "WebP": "0.2",
}
AXES = {
    "images": ("bits per pixel (real bitstreams)", "PSNR (dB)"),
    "vectors": ("bits per vector (real bitstreams)", "-10 log10 MSE per dimension (dB)"),
}


def save_figure(fig: Any, axes: Any, path: Path) -> None:
    """Legend on the first panel, tight layout, PNG at ``path``."""
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt  # after the backend is set

    plt.close(fig)
