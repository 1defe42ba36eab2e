"""How varied a generated sequence is: distinct tokens, the longest run of one token, the longest loop, entropy."""
import numpy


def token_statistics(tokens, max_period=64):
    """How varied a generated sequence is: the tutorial's greedy output tends to collapse to one repeated note.

    Returns a dict: ``length``; ``distinct`` tokens; ``top_share``, the share of the most frequent token;
    ``longest_run``, the longest stretch of one token repeated; ``longest_loop`` and ``loop_period``, the longest
    stretch that repeats itself with one period p <= max_period (tokens[t] == tokens[t - p] throughout, for at
    least two periods; the stretch counts its first period too), i.e. a pattern looped (0 period: none);
    ``entropy`` of the token histogram in nats.
    """
    tokens = numpy.asarray(tokens, numpy.int64)
    n = len(tokens)
    if n == 0:
        return {"length": 0, "distinct": 0, "top_share": 0.0, "longest_run": 0, "longest_loop": 0,
                "loop_period": 0, "entropy": 0.0}
    _, counts = numpy.unique(tokens, return_counts=True)
    shares = counts / n
    best_loop, best_period = 1, 0
    for period in range(1, min(max_period, n - 1) + 1):
        run = longest_true_run(tokens[period:] == tokens[:-period])
        # at least two full periods, so a chance match of two tokens p apart is not a loop
        if run >= period and run + period > best_loop:
            best_loop, best_period = run + period, period
    return {"length": int(n), "distinct": int(len(counts)), "top_share": float(shares.max()),
            "longest_run": longest_true_run(tokens[1:] == tokens[:-1]) + 1,
            "longest_loop": int(best_loop), "loop_period": int(best_period),
            "entropy": float(abs((shares * numpy.log(shares)).sum()))}


def longest_true_run(flags):
    """Length of the longest stretch of consecutive True values."""
    best = current = 0
    for flag in numpy.asarray(flags, bool).tolist():
        current = current + 1 if flag else 0
        best = max(best, current)
    return best


def format_statistics(stats):
    return (f"{stats['length']} tokens, {stats['distinct']} distinct, most frequent {stats['top_share']:.0%}, "
            f"longest run of one token {stats['longest_run']}, longest loop {stats['longest_loop']} tokens "
            f"(period {stats['loop_period']}), entropy {stats['entropy']:.2f} nats")
