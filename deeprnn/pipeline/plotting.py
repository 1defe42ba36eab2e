"""PNG pictures of a run: the loss curves, and a drum grid or piano roll of generated music.

matplotlib is imported inside the functions and drawn through its Agg canvas directly (no pyplot, no global
backend switch), so importing deeprnn never needs it and plotting works without a display.
"""
from pathlib import Path

from ..music.drum_grid import DRUM_CLASS_NAMES, PITCH_TO_CLASS


def new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save(figure, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_loss_curve(history, path, monitor="val_loss", best_epoch=None, validation_label="validation loss"):
    """Training and validation loss per epoch (history rows: epoch, loss, val_loss); the best epoch marked."""
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(7, 4)
    axes = figure.add_subplot()
    epochs = [row["epoch"] for row in history]
    axes.plot(epochs, [row["loss"] for row in history], "o-", label="training loss (windows, dropout on)")
    axes.plot(epochs, [row["val_loss"] for row in history], "s-", label=validation_label)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if best_epoch is not None:
        best = next(row for row in history if row["epoch"] == best_epoch)
        axes.axvline(best_epoch, color="grey", linestyle=":", label=f"best {monitor}: {best[monitor]:.3f} "
                                                                    f"(epoch {best_epoch})")
    axes.set_xlabel("epoch")
    axes.set_ylabel("cross-entropy (nats/token)")
    axes.grid(alpha=0.3)
    axes.legend()
    return save(figure, path)


def plot_events(events, path, title="", steps_per_quarter=4, primer_end=None):
    """A drum grid (drum class x 16th step) when the events are drums, else a piano roll (pitch x time).

    primer_end: where the primer stops, in quarter notes (shaded), when the picture includes it.
    """
    events = list(events)
    if events and all(event.is_drum for event in events):
        return plot_drum_grid(events, path, title, steps_per_quarter, primer_end)
    return plot_piano_roll(events, path, title, primer_end)


def plot_drum_grid(events, path, title="", steps_per_quarter=4, primer_end=None):
    """One row per drum class (kick at the bottom), one column per grid step; darker = louder; bar lines."""
    import numpy

    steps = [int(round(event.start * steps_per_quarter)) for event in events]
    width = max(steps) + 1 if steps else 1
    grid = numpy.zeros((len(DRUM_CLASS_NAMES), width))
    for step, event in zip(steps, events):
        drum_class = PITCH_TO_CLASS[min(max(event.pitch, 0), 127)]
        if drum_class >= 0:
            grid[drum_class, step] = max(grid[drum_class, step], event.velocity)
    figure = new_figure(min(max(6, width / 16), 24), 3.2)
    axes = figure.add_subplot()
    axes.imshow(grid, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=127, interpolation="nearest")
    bar = 4 * steps_per_quarter
    for x in range(0, width + 1, bar):
        axes.axvline(x - 0.5, color="tab:red", linewidth=0.6, alpha=0.6)
    if primer_end:
        axes.axvspan(-0.5, primer_end * steps_per_quarter - 0.5, color="tab:blue", alpha=0.12, label="primer")
        axes.legend(loc="upper right")
    axes.set_yticks(range(len(DRUM_CLASS_NAMES)), DRUM_CLASS_NAMES)
    axes.set_xlabel(f"16th-note step (red: every {bar} steps)")
    axes.set_title(title)
    return save(figure, path)


def plot_piano_roll(events, path, title="", primer_end=None):
    """A horizontal bar per note: pitch against time in quarter notes."""
    end = max((event.start + event.duration for event in events), default=1.0)
    figure = new_figure(min(max(6, end / 8), 24), 4)
    axes = figure.add_subplot()
    for event in events:
        axes.broken_barh([(event.start, event.duration)], (event.pitch - 0.4, 0.8),
                         color="tab:red" if event.is_drum else "tab:blue")
    if primer_end:
        axes.axvspan(0, primer_end, color="tab:grey", alpha=0.15, label="primer")
        axes.legend(loc="upper right")
    axes.set_xlabel("time (quarter notes)")
    axes.set_ylabel("MIDI pitch")
    axes.set_xlim(0, end)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return save(figure, path)
