"""False-alarm rates of the statistical checks on correct samplers, and which checks catch which
mutant, in the quick settings the suite uses.

    python benchmarks/false_alarms.py                 # 20 seeds; table on stdout, JSON file
    python benchmarks/false_alarms.py --seeds 100 --out false_alarms.json

For seed s = 0..S-1:
  agreement   exact vs exact on Dyestuff (weakly informative priors), 1000 draws x 4 chains each,
              the two runs seeded by SeedSequence(s).spawn(2)
  gibbs-sbc   run_gibbs_sbc on sbc.QUICK_DESIGN / QUICK_PRIORS with sbc.QUICK_SBC, seed s
  geweke      geweke_test on the same design and priors with its defaults, seed s
Each check is run at family-wise alpha = 0.01; a false alarm is a correct sampler failing it.
Mutants (every Gibbs mutant of validation.mutants) are run once each at seed 0.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.simplefilter("ignore", FutureWarning)

from models import GroupedData, Priors  # noqa: E402
from samplers import exact  # noqa: E402
from validation import agreement, geweke, mutants, sbc  # noqa: E402

ALPHA = 0.01
DYESTUFF = Path(__file__).resolve().parents[2] / "shared" / "data" / "dyestuff.csv"


def agreement_check(seed: int) -> float:
    data = GroupedData.from_csv(DYESTUFF, group="Batch", value="Yield")
    priors = Priors.weakly_informative(data)
    a, b = np.random.SeedSequence(seed).spawn(2)
    result = agreement.compare(exact.sample(data, priors, draws=1000, chains=4, seed=a),
                               exact.sample(data, priors, draws=1000, chains=4, seed=b), alpha=ALPHA)
    return result.min_p_adjusted


def sbc_check(seed: int, conditionals=None) -> float:
    table = sbc.run_gibbs_sbc(sbc.QUICK_DESIGN, sbc.QUICK_PRIORS, **sbc.QUICK_SBC, seed=seed,
                              conditionals=conditionals).table(ALPHA)
    return float(min(table.chi2_p_holm.min(), table.ecdf_p_holm.min()))


def geweke_check(seed: int, conditionals=None) -> float:
    result = geweke.geweke_test(sbc.QUICK_PRIORS, sbc.QUICK_DESIGN, seed=seed,
                                conditionals=conditionals, alpha=ALPHA)
    return float(result.table.p_holm.min())


CHECKS = {"agreement": agreement_check, "gibbs-sbc": sbc_check, "geweke": geweke_check}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default="false_alarms.json")
    parser.add_argument("--quick", action="store_true",
                        help="the suite's quick settings (the only settings; kept for the docs' command)")
    args = parser.parse_args()

    rows, report = [], {"alpha": ALPHA, "seeds": args.seeds, "checks": {}, "mutants": {}}
    for name, check in CHECKS.items():
        start = time.perf_counter()
        p = [check(seed) for seed in range(args.seeds)]
        seconds = (time.perf_counter() - start) / args.seeds
        alarms = int(np.sum(np.asarray(p) <= ALPHA))
        report["checks"][name] = {"min_p_adjusted": p, "false_alarms": alarms,
                                  "rate": alarms / args.seeds, "seconds_per_run": seconds}
        rows.append({"check": name, "alpha": ALPHA, "seeds": args.seeds, "false alarms": alarms,
                     "rate": alarms / args.seeds, "smallest adjusted p": min(p),
                     "s per run": round(seconds, 2)})
    print(pd.DataFrame(rows).to_string(index=False))

    detection = []
    for mutant in mutants.CATALOGUE:
        if mutant.conditionals is None:
            continue
        entry = {"mutant": mutant.name, "subtle": mutant.subtle}
        for name, check in (("geweke", geweke_check), ("gibbs-sbc", sbc_check)):
            start = time.perf_counter()
            p = check(0, mutant.conditionals)
            entry[f"{name} p"] = p
            entry[f"{name} caught"] = bool(p <= ALPHA)
            entry[f"{name} s"] = round(time.perf_counter() - start, 2)
        detection.append(entry)
        report["mutants"][mutant.name] = entry
    print()
    print(pd.DataFrame(detection).to_string(index=False, float_format=lambda x: f"{x:.2g}"))
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
