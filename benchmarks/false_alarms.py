"""False-alarm rates of every check of the suite on the correct derivation, and the detection
matrix (which check catches which mutant), in the settings `hiercheck validate` uses.

    python benchmarks/false_alarms.py                       # 20 seeds on hsb, quick settings
    python benchmarks/false_alarms.py --seeds 5 --matrix    # and the detection matrix (seed 0)
    python benchmarks/false_alarms.py --json false_alarms.json

For each seed s, `validation.check_sampler(seed=s)` runs all the checks on the package's own
derivation; a false alarm is a check failing it. Every statistical check is built to hold its
family-wise false-alarm rate at alpha = 0.01; the deterministic ones (the marginal likelihood,
EB against statsmodels) have none.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings

import numpy as np
import pandas as pd

warnings.simplefilter("ignore")  # NUTS diagnostics and library notices: not what is measured

from models import load_dataset  # noqa: E402
from validation.suite import ALPHA, check_sampler, detection_matrix  # noqa: E402


def false_alarms(data, seeds: int) -> tuple[pd.DataFrame, dict]:
    outcomes = {}
    started = time.perf_counter()
    for seed in range(seeds):
        verdict = check_sampler(data=data, seed=seed)
        for outcome in verdict.outcomes:
            outcomes.setdefault(outcome.check, []).append(
                {"seed": seed, "value": outcome.value, "passed": outcome.passed})
        print(f"seed {seed}: {'passed' if verdict.passed else 'FAILED'}", flush=True)
    rows = []
    for check, runs in outcomes.items():
        alarms = sum(not run["passed"] for run in runs)
        values = [run["value"] for run in runs]
        rows.append({"check": check, "seeds": len(runs), "false alarms": alarms,
                     "rate": alarms / len(runs), "smallest value": min(values),
                     "largest value": max(values)})
    table = pd.DataFrame(rows)
    report = {"alpha": ALPHA, "seeds": seeds, "data": data.name, "runs": outcomes,
              "seconds": time.perf_counter() - started}
    return table, report


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table; caught marked x, not applicable blank."""
    def cell(value):
        if isinstance(value, (bool, np.bool_)):
            return "x" if value else "."
        return str(value)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * table.shape[1]]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--dataset", default="hsb")
    parser.add_argument("--matrix", action="store_true", help="also the detection matrix")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    table, report = false_alarms(data, args.seeds)
    print(f"\nfalse alarms of the correct derivation on {data.name}, {args.seeds} seeds, "
          f"alpha {ALPHA} per statistical check:")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if args.matrix:
        matrix = detection_matrix(data=data)
        report["detection_matrix"] = matrix.to_dict(orient="records")
        print("\ndetection matrix (True: the check failed the derivation), seed 0:")
        print(markdown(matrix.drop(columns="description")))
    report["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                         "processor": platform.processor(), "date": time.strftime("%Y-%m-%d")}
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
