"""SBC of the empirical-Bayes posterior for theta: how miscalibrated it is on a small design, and
how much is left on the math-test design. Draws docs/figures/sbc_eb_small.png and
docs/figures/sbc_eb_mathtest.png and prints the uniformity tables.

    python benchmarks/sbc_eb.py [--replications 500] [--workers 2]

EB fixes (mu, lam, omega) at their maximum-likelihood estimates and draws theta_i from its
conditional given them, so it ignores the hyperparameters' uncertainty: theta_i's intervals are
too narrow and the true theta_i lands in the extremes of the draws too often (U-shaped ranks).
With 6 schools of 5 (Dyestuff's design) that uncertainty is large; with 100 schools of 4 to 32
(mathtest.csv) it is small.
"""

from __future__ import annotations

import argparse
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore", FutureWarning)

from hiercheck.models import load_dataset  # noqa: E402
from hiercheck.samplers import empirical_bayes  # noqa: E402
from hiercheck.validation import sbc  # noqa: E402
from hiercheck.validation.plots import save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = {  # key of docs/figures/sbc_eb_<key>.png: (built-in data set, label)
    "small": ("dyestuff", "6 batches of 5 (Dyestuff)"),
    "mathtest": ("mathtest", "100 schools of 4-32 (mathtest)"),
}


def extreme_share(ranks: np.ndarray, draws: int) -> float:
    """Share of ranks in the outer 5% at each end (0.1 if calibrated, up to rounding)."""
    cut = int(np.floor(0.05 * (draws + 1)))
    return float(np.mean((ranks < cut) | (ranks > draws - cut)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=500)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    figures = ROOT / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers) as executor:
        for key, (name, label) in DESIGNS.items():
            design = load_dataset(name)
            result = sbc.run_engine_sbc(empirical_bayes.sample, design, sbc.QUICK_PRIORS,
                                        replications=args.replications, draws=args.draws,
                                        seed=args.seed, executor=executor, engine_name="eb")
            thetas = [name for name in result.ranks if name.startswith("theta")]
            table = result.table.set_index("quantity").loc[thetas]
            sizes = {t: int(design.n[int(t[6:-1])]) for t in thetas}
            table["n_i"] = [sizes[t] for t in thetas]
            table["outer 10%"] = [extreme_share(result.ranks[t], args.draws) for t in thetas]
            print(f"\n{label}: {args.replications} replications, {args.draws} draws, "
                  f"priors {sbc.QUICK_PRIORS}")
            print(table[["n_i", "chi2", "chi2_p", "ecdf_p", "chi2_p_holm", "ecdf_p_holm",
                         "uniform", "outer 10%"]].to_string(float_format=lambda x: f"{x:.3g}"))
            save(result.plot(names=thetas,
                             title=f"SBC of empirical Bayes, {label}: {args.replications} "
                                   f"replications, {args.draws} draws"),
                 figures / f"sbc_eb_{key}.png")


if __name__ == "__main__":
    main()
