"""PNG pictures of a run: the loss curves, and a drum grid or piano roll of generated music.

matplotlib is imported inside the functions and drawn through its Agg canvas directly (no pyplot, no global
backend switch), so importing deeprnn never needs it and plotting works without a display.
"""
from pathlib import Path

from ..files import atomic_write
from ..music.drum_grid import DRUM_CLASS_NAMES, PITCH_TO_CLASS


def new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save(figure, path, layout=True):
    path = Path(path)
    if layout:
        figure.tight_layout()
    # through the atomic writer like every file the project writes: an interrupted save keeps the previous picture
    atomic_write(path, lambda stream: figure.savefig(stream, format=path.suffix.lstrip(".") or "png"))
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


def plot_drum_grid(events, path, title="", steps_per_quarter=4, primer_end=None, bars_per_row=4, beats_per_bar=4):
    """The drum grid wrapped like a score: ``bars_per_row`` bars a row, one line per drum class (kick at the
    bottom), a dot per hit at its real time (a hit played 0.2 of a 16th late sits 0.2 of a column right of its grid
    line), its size and shade the hit's velocity; the primer (the first ``primer_end`` quarter notes, when given)
    in grey on a shaded background, the generated part in colour. Events start on a downbeat."""
    import numpy

    position, drum_class, velocity = drum_grid_points(events, steps_per_quarter)
    step = numpy.floor(position + 0.5)  # the grid step a hit belongs to decides its row and part
    bar = beats_per_bar * steps_per_quarter
    row_length = bars_per_row * bar
    primer_steps = int(round(primer_end * steps_per_quarter)) if primer_end else 0
    total = max(int(step.max()) + 1 if len(step) else 1, primer_steps)
    rows = -(-total // row_length)

    figure = new_figure(11, 1.0 + 1.75 * rows)
    inch = 1 / figure.get_figheight()  # figure coordinates of one inch, to place the title, legend and note
    figure.suptitle(title, y=1 - 0.08 * inch, va="top")
    for row, axes in enumerate(figure.subplots(rows, 1, squeeze=False)[:, 0]):
        first = row * row_length
        axes.axvspan(-0.5, primer_steps - first - 0.5, color="tab:grey", alpha=0.15, linewidth=0)
        for x in range(0, row_length + 1, steps_per_quarter):
            axes.axvline(x - 0.5, color="black", linewidth=0.8 if x % bar == 0 else 0.3, alpha=0.5)
        in_row = (step >= first) & (step < first + row_length)
        for part, colours in ((step < primer_steps, "Greys"), (step >= primer_steps, "Oranges")):
            chosen = in_row & part
            axes.scatter(position[chosen] - first, drum_class[chosen], s=velocity_size(velocity[chosen]),
                         c=velocity[chosen], cmap=colours, vmin=-40, vmax=127, edgecolors="black", linewidths=0.3)
        axes.set_xlim(-0.5, row_length - 0.5)
        axes.set_ylim(-0.7, len(DRUM_CLASS_NAMES) - 0.3)
        axes.set_yticks(range(len(DRUM_CLASS_NAMES)), DRUM_CLASS_NAMES, fontsize=7)
        axes.set_xticks(range(0, row_length, bar), [f"bar {first // bar + index + 1}"
                                                    for index in range(bars_per_row)], fontsize=8, ha="left")
        axes.tick_params(axis="x", length=0)
    handles = drum_grid_legend(velocity, primer_steps > 0)
    figure.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize=8,
                  bbox_to_anchor=(0.5, 1 - 0.38 * inch))
    figure.text(0.5, 0.003, f"one column per 16th note, hits at their played time; thick lines: bars, thin: beats "
                f"({steps_per_quarter} steps)",
                ha="center", va="bottom", fontsize=8)
    figure.tight_layout(rect=(0, 0.25 * inch, 1, 1 - 0.6 * inch))
    return save(figure, path, layout=False)


def drum_grid_legend(velocity, with_primer):
    """The drum grid's legend entries: generated, the primer when drawn, and the marker sizes of three velocities
    only when the hits' velocities vary (the drums recipe plays every hit at 90: sizes would explain nothing)."""
    import numpy
    from matplotlib.lines import Line2D

    def marker(colour, size, label):
        return Line2D([], [], marker="o", linestyle="", markerfacecolor=colour, markeredgecolor="black",
                      markersize=size, label=label)

    handles = [marker("tab:orange", 8, "generated")]
    if with_primer:
        handles.append(marker("grey", 8, "primer (shaded)"))
    if len(numpy.unique(velocity)) > 1:
        handles += [marker("white", velocity_size(value) ** 0.5, f"velocity {value}") for value in (30, 80, 127)]
    return handles


def drum_grid_points(events, steps_per_quarter=4):
    """Where each drum hit is drawn: (position in steps, at its real time; drum class; velocity), each (N,) float.
    Hits of a pitch outside the drum maps are left out."""
    import numpy

    hits = [(event.start * steps_per_quarter, PITCH_TO_CLASS[min(max(event.pitch, 0), 127)], event.velocity)
            for event in events]
    return numpy.array([hit for hit in hits if hit[1] >= 0], dtype=float).reshape(-1, 3).T


def velocity_size(velocity):
    """Marker area in points^2 for a MIDI velocity: area grows with loudness, a soft ghost note still visible."""
    import numpy

    return 6 + 110 * (numpy.asarray(velocity, dtype=float) / 127) ** 2


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
