"""Independent computations the built-in models' tests share (tests/test_bloodpressure.py,
tests/test_cheese.py): a conditional read off a joint log density numerically, never through
the samplers' algebra, and the statistical comparisons of draws and posteriors.

- `draws_of`: draws of a conditional at a state, by repeated calls or by one batched call;
  `assert_each_state_alone`: a batch of states gets each state's own conditional.
- `gaussian_by_differences`: a log density quadratic in x (a Gaussian conditional) has its
  precision as minus its Hessian and its mean where its gradient vanishes; central differences are
  exact for a quadratic up to rounding, so mean and covariance come out to ~1e-9.
- `normalized_on_grid`: a scalar conditional normalized by quadrature of exp(log density) on a
  grid around its mode: moments and a CDF, for any density, conjugate or not.
- `quantile_gaps`: Gibbs against NUTS, quantile by quantile, in units of their combined MCSE.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize, stats

import arviz as az


def draws_of(draw, state, values, count, seed=0, batched=False) -> np.ndarray:
    """`count` draws of a conditional at `state`, as an array (count, *shape), or (count, k) for
    a block of k scalars: `count` calls, or one call on `count` copies of the state with the
    response y broadcast over them (as the checks hand a batch the model's data)."""
    rng = np.random.default_rng(seed)
    if not batched:
        return np.array([draw(rng, state, values) for _ in range(count)])
    copies = {name: np.repeat(np.asarray(value, dtype=float)[None], count, axis=0)
              for name, value in state.items()}
    drawn = draw(rng, copies, {**values, "y": np.broadcast_to(values["y"],
                                                              (count, values["y"].size))})
    return np.stack(drawn, axis=-1) if isinstance(drawn, tuple) else drawn


def assert_each_state_alone(functions, states, batch_data, alone_data, rtol) -> dict:
    """Each of `functions` (state, data) -> parameters, on the batch of `states` with
    `batch_data`, gives state k the parameters it gets alone with `alone_data[k]`; returns the
    batch of states."""
    batch = {name: np.stack([np.asarray(state[name]) for state in states]) for name in states[0]}
    for function in functions:
        together = function(batch, batch_data)
        for k, state in enumerate(states):
            for part_together, part_alone in zip(together, function(state, alone_data[k])):
                part = np.broadcast_to(part_together, (len(states), *np.shape(part_alone)))[k]
                np.testing.assert_allclose(part, part_alone, rtol=rtol)
    return batch


def gaussian_by_differences(log_density, point, step) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of exp(log_density) for a log density quadratic in x (flat array),
    from its gradient and Hessian at `point` by central differences of size `step` (per
    coordinate)."""
    point = np.asarray(point, dtype=float).ravel()
    step = np.broadcast_to(np.asarray(step, dtype=float), point.shape)
    k = point.size
    basis = np.eye(k) * step[:, None]
    gradient = np.array([(log_density(point + e) - log_density(point - e)) / (2 * s)
                         for e, s in zip(basis, step)])
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = basis[i], basis[j]
            value = (log_density(point + ei + ej) - log_density(point + ei - ej)
                     - log_density(point - ei + ej) + log_density(point - ei - ej))
            hessian[i, j] = hessian[j, i] = value / (4 * step[i] * step[j])
    covariance = np.linalg.inv(-hessian)
    return point + covariance @ gradient, covariance


class Grid:
    """A scalar density normalized numerically on a grid: `x`, `pdf`, `cdf`, `mean`, `var`."""

    def __init__(self, log_density, positive: bool, points: int = 2001, width: float = 14.0):
        """Find the mode (on the log scale for a positive variable), take the curvature there as
        a scale, and integrate over mode +- width scales (cut at 0 for a positive variable)."""
        if positive:
            found = optimize.minimize_scalar(lambda t: -log_density(np.exp(t)) - t,
                                             bracket=(-10.0, 5.0))
            mode = float(np.exp(found.x))
        else:
            found = optimize.minimize_scalar(lambda t: -log_density(t), bracket=(-1.0, 1.0))
            mode = float(found.x)
        h = 1e-3 * max(abs(mode), 1e-8)
        curvature = -(log_density(mode + h) - 2 * log_density(mode) + log_density(mode - h)) / h**2
        scale = 1.0 / np.sqrt(curvature)
        low = mode - width * scale
        if positive:
            low = max(low, mode * 1e-6)
        self.x = np.linspace(low, mode + width * scale, points)
        log_values = np.array([log_density(v) for v in self.x])
        weights = np.exp(log_values - log_values.max())
        total = integrate.simpson(weights, x=self.x)
        self.pdf = weights / total
        self.cdf = integrate.cumulative_simpson(self.pdf, x=self.x, initial=0.0)
        self.cdf /= self.cdf[-1]
        self.mean = integrate.simpson(self.x * self.pdf, x=self.x)
        self.var = integrate.simpson((self.x - self.mean) ** 2 * self.pdf, x=self.x)
        # the edges hold no mass: the grid covers the density
        assert self.pdf[0] * scale < 1e-12 or low == mode * 1e-6
        assert self.pdf[-1] * scale < 1e-12

    def ks_pvalue(self, draws) -> float:
        """The KS test of `draws` against this distribution."""
        return stats.kstest(draws, lambda v: np.interp(v, self.x, self.cdf)).pvalue


def mahalanobis_pvalue(draws, mean, covariance) -> float:
    """KS test that (x - mean)' covariance^{-1} (x - mean) ~ chi^2_k over the draws (rows):
    sees a wrong covariance, correlations included, not only wrong marginals."""
    deviation = np.asarray(draws) - mean
    distance = np.einsum("ni,ij,nj->n", deviation, np.linalg.inv(covariance), deviation)
    return stats.kstest(distance, stats.chi2(df=np.shape(mean)[-1]).cdf).pvalue


def quantile_gaps(first: np.ndarray, second: np.ndarray, probs=(0.05, 0.5, 0.95)) -> np.ndarray:
    """(q_first - q_second) / sqrt(mcse_first^2 + mcse_second^2) for each quantile, the draws
    of one scalar of shape (chain, draw) each; about N(0, 1) when both sample one posterior."""
    gaps = []
    for prob in probs:
        values, errors = [], []
        for draws in (first, second):
            values.append(np.quantile(draws, prob))
            errors.append(float(az.mcse(np.asarray(draws), method="quantile", prob=prob)))
        gaps.append((values[0] - values[1]) / np.hypot(*errors))
    return np.array(gaps)


def model_values(model) -> dict[str, np.ndarray]:
    """What the generic interface's `data` holds, read from a PyMC model without compiling:
    every pm.Data by name and every observed variable's values."""
    values = {variable.name: np.asarray(variable.get_value()) for variable in model.data_vars}
    for variable in model.observed_RVs:
        values[variable.name] = np.asarray(model.rvs_to_values[variable].data)
    return values


def natural_log_density(model):
    """state -> log p(y, state) from the PyMC model, value transforms removed (natural scale, no
    Jacobian). Compiles: slow tests only."""
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)
    compiled = plain.compile_logp(jacobian=False)
    names = [variable.name for variable in plain.free_RVs]
    return lambda state: float(compiled({name: np.asarray(state[name], dtype=float)
                                         for name in names}))
