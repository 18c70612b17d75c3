"""False-alarm rates of every check of the suite on the correct derivation, and the detection
matrix (which check catches which mutant), in the settings `hiercheck validate` uses.

    python benchmarks/false_alarms.py                       # 20 seeds on hsb, quick settings
    python benchmarks/false_alarms.py --seeds 5 --matrix    # and the detection matrix (seed 0)
    python benchmarks/false_alarms.py --json false_alarms.json
    python benchmarks/false_alarms.py --tabulate false_alarms.json   # the table again, no run
    python benchmarks/false_alarms.py --kernel metropolis-omega \
        --checks consistency "consistency (small)" --seeds 100      # a Markov kernel instead

For each seed s, `hiercheck.validation.check_sampler(seed=s)` runs all the checks on the package's own
derivation (or, with `--kernel NAME`, on the package's derivation with one conditional replaced
by a correct Markov kernel of `hiercheck.validation.kernels.KERNELS`; `--checks` runs some checks
only); a false alarm is a check failing it. Every statistical check is built to hold its
family-wise false-alarm rate at its alpha (the suite's ALPHA); the table also counts the runs
whose p-value fell at or below 0.01, the level of each check used on its own. The deterministic
checks (the marginal and restricted likelihoods, EB against statsmodels) have no level: they fail
or they do not.
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

from hiercheck.models import load_dataset  # noqa: E402
from hiercheck.validation.kernels import KERNELS  # noqa: E402
from hiercheck.validation.suite import (  # noqa: E402
    ALPHA, CHECKS, check_sampler, detection_matrix, matrix_markdown)


P_VALUE_CHECKS = ("consistency", "consistency (small)", "agreement vs exact", "agreement vs nuts",
                  "geweke", "sbc")
LEVELS = (0.01, ALPHA)


def false_alarms(data, seeds: int, kernel: str | None = None, checks=CHECKS) -> dict:
    """Every check's value and verdict at each seed, on the package's derivation or with the
    example kernel `kernel` in it."""
    conditionals = KERNELS[kernel] if kernel else None
    outcomes = {}
    started = time.perf_counter()
    for seed in range(seeds):
        verdict = check_sampler(conditionals, data=data, seed=seed, checks=checks)
        for outcome in verdict.outcomes:
            outcomes.setdefault(outcome.check, []).append(
                {"seed": seed, "value": outcome.value, "passed": outcome.passed})
        print(f"seed {seed}: {'passed' if verdict.passed else 'FAILED'}", flush=True)
    return {"alpha": ALPHA, "seeds": seeds, "data": data.name, "kernel": kernel, "runs": outcomes,
            "seconds": time.perf_counter() - started}


def tabulate(report: dict) -> pd.DataFrame:
    """Alarms per check: at each level for the p-value checks (an alarm is an adjusted p at or
    below it), failures for the deterministic ones."""
    rows = []
    for check, runs in report["runs"].items():
        values = np.array([run["value"] for run in runs])
        row = {"check": check, "seeds": len(runs)}
        for level in LEVELS:
            alarms = int(np.sum(values <= level)) if check in P_VALUE_CHECKS else \
                sum(not run["passed"] for run in runs)
            row[f"alarms at {level:g}"] = alarms
        row["smallest value"], row["largest value"] = values.min(), values.max()
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--dataset", default="hsb")
    parser.add_argument("--kernel", choices=sorted(KERNELS),
                        help="replace one conditional by this example Markov kernel")
    parser.add_argument("--checks", nargs="+", choices=CHECKS, default=CHECKS, metavar="CHECK",
                        help="run only these checks")
    parser.add_argument("--matrix", action="store_true", help="also the detection matrix")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--tabulate", metavar="JSON", help="print the table of an earlier run")
    args = parser.parse_args()

    if args.tabulate:
        with open(args.tabulate) as file:
            report = json.load(file)
    else:
        report = false_alarms(load_dataset(args.dataset), args.seeds, args.kernel, args.checks)
    subject = f"kernel {report['kernel']}" if report.get("kernel") else "the correct derivation"
    print(f"\nfalse alarms of {subject} on {report['data']}, {report['seeds']} seeds:")
    print(tabulate(report).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    if args.tabulate:
        return
    if args.matrix:
        matrix = detection_matrix(data=load_dataset(args.dataset))
        report["detection_matrix"] = matrix.to_dict(orient="records")
        print("\ndetection matrix, seed 0:")
        print(matrix_markdown(matrix))
    report["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                         "processor": platform.processor(), "date": time.strftime("%Y-%m-%d")}
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=1, default=float)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
