"""What every benchmark script ends its output with: one line holding a JSON object of the run's
figures, flat keys with their unit in the name ("lag_p50_ms", "kits_ratio"), so that runs can be
compared by a program (`json.loads(output.splitlines()[-1])`). The human-readable report comes
before it; nothing comes after it."""

import json
import math
import sys


def _plain(value):
    """JSON's own: no NaN or infinity (strict parsers refuse them), floats to a readable length."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, 3) if abs(value) >= 1 else float(f"{value:.4g}")
    return value


def figures_print(figures: dict) -> None:
    """Print `figures` as the last line of the output. Call it last, after every child process
    and thread of the run is done, so that nothing is printed after it."""
    sys.stderr.flush()
    sys.stdout.flush()
    print(json.dumps({key: _plain(value) for key, value in figures.items()}, allow_nan=False), flush=True)
