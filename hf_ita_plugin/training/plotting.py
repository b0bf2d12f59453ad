"""Loss curves as PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_path


def plot_loss_curve(history: list[dict[str, Any]], path: str | Path, *, title: str = "Training loss",
                    heldout: list[tuple[int, float]] | None = None) -> Path | None:
    """Plot train loss per logged step and the held-out loss at each evaluation; returns the PNG path.

    Held-out points are the trainer's periodic ``eval_loss`` plus ``heldout`` (``(step, loss)`` pairs: the
    recipe's response loss before training, at step 0, and after it), merged by step. Returns None
    without data.
    """
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = sorted({**{h["step"]: h["eval_loss"] for h in history if "eval_loss" in h}, **dict(heldout or [])}.items())
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
