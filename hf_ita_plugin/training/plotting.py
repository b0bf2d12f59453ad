"""Loss curves as PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_path


def plot_loss_curve(history: list[dict[str, Any]], path: str | Path, *, title: str = "Training loss") -> Path | None:
    """Plot train loss (and eval loss when logged) per step; returns the PNG path, or None without data."""
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss / loss di addestramento", color="#1f77b4", linewidth=1.8)
    if evals:
        ax.plot(*zip(*evals), "o--", label="held-out loss / loss di validazione", color="#d62728")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
