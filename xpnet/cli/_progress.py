"""What the ``xpnet`` command shows: a progress bar, a summary table and a loss plot.

tqdm and matplotlib are optional (``pip install "xpnet[examples]"``) and imported only
here, when the command needs them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence


class ProgressBar:
    """A tqdm bar over epochs, fed by ``fit``'s callback.

    The callback runs when a block of epoch values has been read back from the device
    (every 16 epochs), so the bar costs no host synchronisation of its own; it moves
    in steps of that block.

    Parameters
    ----------
    epochs : int
        The most epochs training may take.
    score_name : str
        What the validation score is ("accuracy", "R²"), for the bar's label.
    done : int
        Epochs trained before (a resumed run starts there).
    """

    def __init__(self, epochs: int, *, score_name: str, done: int = 0) -> None:
        from tqdm import tqdm

        self.score_name = score_name
        self.bar = tqdm(total=epochs, initial=done, desc="training", unit="epoch",
                        file=sys.stderr, dynamic_ncols=True, leave=True)  # fmt: skip

    def __call__(self, losses: list[float], scores: list[float] | None) -> None:
        postfix = {"loss": f"{losses[-1]:.4g}"}
        if scores is not None:
            postfix[f"val {self.score_name}"] = f"{scores[-1]:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(len(losses))

    def close(self) -> None:
        self.bar.close()


def table(rows: Sequence[tuple[str, ...]]) -> str:
    """Aligned columns, one row per tuple: (label, value), (label, version, status), ...

    Each column but a row's last is as wide as its widest entry that is not a last one,
    so rows of two and of three columns align in one table.
    """
    widths: dict[int, int] = {}
    for row in rows:
        for j, cell in enumerate(row[:-1]):
            widths[j] = max(widths.get(j, 0), len(cell))
    return "\n".join(
        "  " + "  ".join([*(f"{c:<{widths[j]}}" for j, c in enumerate(row[:-1])), row[-1]])
        for row in rows
    )


def duration(seconds: float) -> str:
    """``seconds`` in a readable unit: "850 µs", "12.3 ms", "4.56 s"."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def plot_losses(
    path: str,
    losses: Sequence[float],
    *,
    validation_losses: Sequence[float] | None = None,
    validation_scores: Sequence[float] | None = None,
    score_name: str = "score",
    title: str = "",
) -> None:
    """Write a picture of the loss per epoch, on a log scale, to ``path`` (PNG, SVG or PDF).

    With early stopping, the validation loss is drawn beside the training loss and the
    validation score in a second panel below.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = 2 if validation_scores else 1
    fig = Figure(figsize=(7.0, 3.2 + 2.2 * (panels - 1)), layout="constrained")
    FigureCanvasAgg(fig)  # draws without pyplot, so no GUI and no global state
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    epochs = range(1, len(losses) + 1)
    ax = axes[0]
    ax.plot(epochs, losses, label="training loss", color="tab:blue")
    if validation_losses:
        ax.plot(epochs, validation_losses, label="validation loss", color="tab:orange")
    positive = [v for v in [*losses, *(validation_losses or [])] if v > 0 and math.isfinite(v)]
    if positive:
        ax.set_yscale("log")
    ax.set_ylabel("loss E_total")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    if panels == 2:
        best = max(range(len(validation_scores)), key=lambda k: validation_scores[k])
        axes[1].plot(epochs, validation_scores, color="tab:green")
        axes[1].axvline(best + 1, color="gray", linestyle="--", label=f"best: epoch {best + 1}")
        axes[1].set_ylabel(f"validation {score_name}")
        axes[1].grid(True, alpha=0.3)
        axes[1].legend(loc="lower right")
    axes[-1].set_xlabel("epoch")
    fig.savefig(path, dpi=120)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def extras() -> list[tuple[str, str]]:
    """The optional packages the command uses, with their versions or "not installed"."""
    rows = []
    for module, package in (("sklearn", "scikit-learn"), ("pandas", "pandas"), ("tqdm", "tqdm"),
                            ("matplotlib", "matplotlib")):  # fmt: skip
        version = "not installed"
        if _has(module):
            version = str(getattr(sys.modules[module], "__version__", "?"))
        rows.append((package, version))
    return rows
