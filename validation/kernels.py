"""Markov kernels in place of direct draws: what a user writes who cannot find a conditional in
closed form, right and wrong. The tests and benchmarks/false_alarms.py share them.

Each is a draw function `draw_omega(rng, state, stats, priors)` that runs INNER_STEPS steps of a
random-walk Metropolis sampler on u = log omega, from the state's omega, targeting the full
conditional

    p(omega | theta, mu, lam) oc omega^(c + m/2 - 1) exp(-R omega),
    R = d + lam sum_i (theta_i - mu)^2 / 2.

In u the target density gains the Jacobian d omega / du = omega, so log p(u) = log p(omega) + u:

    draw_omega_metropolis               the correct acceptance ratio: leaves the conditional
                                        invariant, and mixes in a few steps
    draw_omega_metropolis_no_jacobian   the Jacobian left out: leaves Gamma(c + m/2 - 1, R)
                                        invariant instead, a shape one too small
    draw_omega_stuck                    never moves (returns omega): leaves every distribution
                                        invariant; the consistency check passes it by design,
                                        only a check of how the chains mix can catch it
    draw_omega_metropolis_off_by(eps)   the correct kernel with eps added to every log
                                        acceptance ratio: it accepts too often, and so leaves a
                                        wider law than the conditional invariant (the power
                                        study's "kernel" perturbation; eps = 0 is the correct one)

The proposal's SD is PROPOSAL_SCALE times the conditional's SD in u, about (c + m/2)^(-1/2): the
near-optimal random walk in one dimension (acceptance about 0.44).
"""

from __future__ import annotations

import numpy as np

from hiercheck.models import Priors, SchoolStats
from hiercheck.samplers import gibbs

__all__ = ["INNER_STEPS", "KERNELS", "PROPOSAL_SCALE", "draw_omega_metropolis",
           "draw_omega_metropolis_no_jacobian", "draw_omega_metropolis_off_by", "draw_omega_stuck"]

INNER_STEPS = 15
PROPOSAL_SCALE = 2.4


def _metropolis_log_omega(rng, state, stats, priors, jacobian: bool,
                          log_ratio_offset: float = 0.0) -> np.ndarray:
    """INNER_STEPS random-walk Metropolis steps on u = log omega, with or without the Jacobian
    in the log target (c + m/2 - 1) u - R e^u [+ u], accepting when log U < the log ratio plus
    `log_ratio_offset` (0 for a correct kernel).
    """
    shape, rate = gibbs.omega_full_conditional(state, stats, priors)

    def log_target(u):
        return (shape - 1.0) * u - rate * np.exp(u) + (u if jacobian else 0.0)

    u = np.log(np.asarray(state.omega, dtype=float))
    current = log_target(u)
    step = PROPOSAL_SCALE / np.sqrt(shape)
    for _ in range(INNER_STEPS):
        proposal = u + step * rng.standard_normal(u.shape)
        proposed = log_target(proposal)
        accept = np.log(rng.random(u.shape)) < proposed - current + log_ratio_offset
        u = np.where(accept, proposal, u)
        current = np.where(accept, proposed, current)
    return np.exp(u)


def draw_omega_metropolis(rng: np.random.Generator, state: gibbs.GibbsState, stats: SchoolStats,
                          priors: Priors) -> np.ndarray:
    """omega after INNER_STEPS random-walk Metropolis steps on log omega, target
    log p(omega | theta, mu, lam) + log omega (the Jacobian): a correct kernel.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the proposals and acceptances.
    state : GibbsState
        The chain's current state; its omega is where the steps start.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants (c, d).

    Returns
    -------
    numpy.ndarray
        The new omega, of omega's shape.
    """
    return _metropolis_log_omega(rng, state, stats, priors, jacobian=True)


def draw_omega_metropolis_no_jacobian(rng: np.random.Generator, state: gibbs.GibbsState,
                                      stats: SchoolStats, priors: Priors) -> np.ndarray:
    """The same steps with target log p(omega | theta, mu, lam) in u = log omega: the Jacobian
    left out, so the kernel leaves Gamma(c + m/2 - 1, R) invariant, not the conditional.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the proposals and acceptances.
    state : GibbsState
        The chain's current state; its omega is where the steps start.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants (c, d).

    Returns
    -------
    numpy.ndarray
        The new omega, of omega's shape.
    """
    return _metropolis_log_omega(rng, state, stats, priors, jacobian=False)


def draw_omega_metropolis_off_by(eps: float) -> gibbs.Draw:
    """The correct kernel with eps added to the log acceptance ratio of every step.

    With eps > 0 a move down the target is accepted e^eps times too often (and one up it
    always), which breaks detailed balance: the kernel no longer leaves the conditional
    invariant. With eps = 0 it draws exactly what `draw_omega_metropolis` draws.

    Parameters
    ----------
    eps : float
        The error in the log acceptance ratio.

    Returns
    -------
    callable
        A draw function `draw_omega(rng, state, stats, priors)`.
    """
    def draw_omega(rng, state, stats, priors):
        return _metropolis_log_omega(rng, state, stats, priors, jacobian=True,
                                     log_ratio_offset=eps)

    draw_omega.__name__ = draw_omega.__qualname__ = f"draw_omega_metropolis_off_by_{eps:g}"
    return draw_omega


def draw_omega_stuck(rng: np.random.Generator, state: gibbs.GibbsState, stats: SchoolStats,
                     priors: Priors) -> np.ndarray:
    """omega unchanged: a kernel that never moves.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of the proposals and acceptances.
    state : GibbsState
        The chain's current state; its omega is where the steps start.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants (c, d).

    Returns
    -------
    numpy.ndarray
        The new omega, of omega's shape.
    """
    return np.array(state.omega, dtype=float)


KERNELS: dict[str, gibbs.Conditionals] = {
    "metropolis-omega": gibbs.Conditionals(draw_omega=draw_omega_metropolis),
    "metropolis-omega-no-jacobian": gibbs.Conditionals(
        draw_omega=draw_omega_metropolis_no_jacobian),
    "stuck-omega": gibbs.Conditionals(draw_omega=draw_omega_stuck),
}
