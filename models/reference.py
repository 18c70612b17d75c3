"""The PyMC reference model: the hierarchy written as the math reads, sampled with NUTS.

    lam     ~ Gamma(a, b)                  (shape a, rate b)
    omega   ~ Gamma(c, d)
    mu      ~ N(nu, 1/phi)
    theta_i ~ N(mu, 1/(omega lam))         i = 1..m          ("centered")
            = mu + z_i / sqrt(omega lam),  z_i ~ N(0, 1)      ("noncentered")
    y_ij    ~ N(theta_i, 1/lam)            observed, one term per student
    sigma = lam^(-1/2),  tau = omega^(-1/2)

The scores and the school of each score enter through `pm.Data`, so one model (and one compiled
nutpie sampler) takes new scores of the same design; simulation-based calibration relies on this.
The likelihood is written on the individual scores, not on the sufficient statistics, so that this
model shares no algebra with the hand-derived engines it checks.
"""

from __future__ import annotations

__all__ = [
    "BACKENDS", "PARAMETRIZATIONS", "build_model", "joint_logp_function", "sample_nutpie",
    "sample_nuts",
]

import logging
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import pymc as pm
from numpy.typing import ArrayLike
import pytensor.tensor as pt
from scipy.linalg import helmert
from pymc.model.transform.conditioning import remove_value_transforms
from pytensor.graph.replace import vectorize_graph

from hiercheck._typing import SeedLike
from hiercheck.cache import PICKLE, DiskCache, data_parts, source_digest
from hiercheck.errors import NutsWarning, SettingsError, require_integer

from .data import GroupedData
from .engine import POSTERIOR_VARIABLES, SAMPLED, az, check_run_size, to_inference_data
from .joint import joint_terms
from .priors import Priors

PARAMETRIZATIONS = ("centered", "noncentered")
BACKENDS = ("pymc", "nutpie")
MAX_R_HAT = 1.01


def build_model(data: GroupedData, priors: Priors, parametrization: str = "centered") -> pm.Model:
    """The hierarchy as a `pm.Model` with dims `school` (labels) and `student`.

    Parameters
    ----------
    data : GroupedData
        The scores; they and the school of each score enter as `pm.Data` ("scores",
        "school_of_student"), so `set_data` swaps in new scores of the same design.
    priors : Priors
        The prior parameters.
    parametrization : {"centered", "noncentered"}, default "centered"
        theta as a normal variable, or as mu + z / sqrt(omega lam) with z standard normal.

    Returns
    -------
    pymc.Model
        Free variables lam, omega, mu and theta (or z); sigma and tau as deterministics; the
        observed scores y.

    Raises
    ------
    PriorError
        If the posterior is improper under the priors (`Priors.require_proper_posterior`).
    SettingsError
        If `parametrization` is not one of `PARAMETRIZATIONS`.
    """
    priors.require_proper_posterior(data.m)
    _check_settings("pymc", parametrization, 0)
    coords = {"school": data.labels, "student": np.arange(data.N)}
    with pm.Model(coords=coords) as model:
        school = pm.Data("school_of_student", data.codes, dims="student")
        scores = pm.Data("scores", data.values, dims="student")

        lam, omega, mu = _hyperparameters(priors)
        pm.Deterministic("sigma", lam ** -0.5)
        pm.Deterministic("tau", omega ** -0.5)

        if parametrization == "centered":
            theta = pm.Normal("theta", mu=mu, tau=omega * lam, dims="school")
        else:
            z = pm.Normal("z", mu=0.0, sigma=1.0, dims="school")
            theta = pm.Deterministic("theta", mu + z / pm.math.sqrt(omega * lam), dims="school")

        pm.Normal("y", mu=theta[school], tau=lam, observed=scores, dims="student")
    return model


def _hyperparameters(priors: Priors):
    """lam ~ Gamma(a, b), omega ~ Gamma(c, d), mu ~ N(nu, 1/phi) in the model being built;
    a = b = 0 is Jeffreys' 1/lam (any a, b with a zero: lam^(a-1) e^(-b lam)), c = -1, d = 0 the
    flat prior on tau^2 (any c, d not both positive: omega^(c-1) e^(-d omega)), phi = 0 a flat mu.
    """
    # PyTensor stores a Python float that float32 represents exactly (2.0, 0.25) as a float32
    # constant, and then computes log(b) etc. in single precision: pass float64 scalars
    a, b, c, d, nu, phi = (np.float64(value) for value in priors.as_dict().values())
    if a > 0 and b > 0:
        lam = pm.Gamma("lam", alpha=a, beta=b)
    else:  # the improper limit, written as a flat positive lam and its log density
        lam = pm.HalfFlat("lam")
        pm.Potential("lam_prior", (a - 1.0) * pm.math.log(lam) - b * lam)
    if c > 0 and d > 0:
        omega = pm.Gamma("omega", alpha=c, beta=d)
    else:  # the improper kernel, as for lam
        omega = pm.HalfFlat("omega")
        pm.Potential("omega_prior", (c - 1.0) * pm.math.log(omega) - d * omega)
    mu = pm.Normal("mu", mu=nu, tau=phi) if phi > 0 else pm.Flat("mu")
    return lam, omega, mu


def build_collapsed_model(data: GroupedData, priors: Priors) -> pm.Model:
    """The hierarchy with theta integrated out, as a `pm.Model`. Each school's scores
    y_i = (y_i1, ..., y_in_i) are jointly normal,

        y_i | mu, lam, omega ~ MvNormal(mu 1, S_i),   S_i = (I + 11'/omega) / lam,

    (Var y_ij = (1 + 1/omega)/lam, within plus between; Cov(y_ij, y_ik) = 1/(omega lam), the
    shared theta_i). The model writes this density in the orthonormal Helmert basis H_i
    (`scipy.linalg.helmert`, first row 1'/sqrt(n_i)), where S_i is diagonal, so that PyMC
    evaluates it with elementwise normals instead of a Cholesky factor per school (which took
    11 to 32 ms an evaluation on hsb, far too slow for the grids of the consistency check):

        (H_i y_i)_1 = 1'y_i/sqrt(n_i) ~ N(sqrt(n_i) mu, 1'S_i 1/n_i = (1 + n_i/omega)/lam)
        (H_i y_i)_k                   ~ N(0, 1/lam),   k = 2..n_i   (contrasts: S_i v = v/lam
                                                                     for v orthogonal to 1)

    independent, and with Jacobian 1 (H_i is orthogonal), so the log density is exactly
    log p(y, mu, lam, omega). It shares no code with `hiercheck.samplers.marginal`;
    tests/test_reference.py compares it with scipy's dense multivariate normal density. Priors
    under which the posterior is improper raise PriorError (`Priors.require_proper_posterior`).
    """
    priors.require_proper_posterior(data.m)
    rotated = [helmert(size, full=True) @ data.values[data.codes == i]
               for i, size in enumerate(data.n)]
    totals = np.array([scores[0] for scores in rotated])  # 1'y_i / sqrt(n_i)
    contrasts = np.concatenate([scores[1:] for scores in rotated])
    sizes = data.n.astype(float)
    with pm.Model() as model:
        lam, omega, mu = _hyperparameters(priors)
        pm.Normal("school_totals", mu=mu * np.sqrt(sizes),
                  sigma=pm.math.sqrt((1.0 + sizes / omega) / lam), observed=totals)
        if contrasts.size:  # none when every school has one student
            pm.Normal("contrasts", mu=0.0, tau=lam, observed=contrasts)
    return model


# What the compiled functions below are made from: a change of this module or of the list of
# the joint's terms is a new cache key.
_SOURCE_DIGEST = source_digest(__name__, "hiercheck.models.joint")
T = TypeVar("T")


def _compiled_once(function: str, data: GroupedData, priors: Priors, compile_: Callable[[], T]
                   ) -> T:
    """compile_() of a function of the reference model of (data, priors), kept in the reference
    cache (`hiercheck.cache`) under the data, the priors, this module's source and the package
    versions: a later process unpickles it in a twentieth of a second instead of compiling it
    for seconds.
    """
    parts = {"function": function, **data_parts(data), "priors": priors.as_dict(),
             "source": _SOURCE_DIGEST}
    return DiskCache().get("compiled", parts, compile_, PICKLE)


def collapsed_logp_function(data: GroupedData, priors: Priors):
    """(mu, lam, omega) -> log p(y, mu, lam, omega), theta integrated out, compiled once from
    `build_collapsed_model` on the natural scale (no Jacobian).
    """
    def compile_logp():
        model = remove_value_transforms(build_collapsed_model(data, priors))
        with _quiet_graph_rewriter():
            return model.compile_logp(jacobian=False)

    compiled = _compiled_once("collapsed logp", data, priors, compile_logp)

    def logp(mu, lam, omega) -> float:
        return float(compiled({"mu": np.asarray(mu, dtype=float),
                               "lam": np.asarray(lam, dtype=float),
                               "omega": np.asarray(omega, dtype=float)}))

    return logp


def joint_logp_function(
        data: GroupedData, priors: Priors,
) -> Callable[[ArrayLike, ArrayLike, ArrayLike, ArrayLike], float]:
    """(theta, mu, lam, omega) -> log p(y, theta, mu, lam, omega), compiled once from the
    centered reference model on the natural scale (log transforms removed, so no Jacobian).

    Parameters
    ----------
    data : GroupedData
        The scores y.
    priors : Priors
        The prior parameters.

    Returns
    -------
    Callable
        logp(theta, mu, lam, omega) -> float, theta of shape (m,) and the others scalars.
    """
    def compile_logp():
        model = remove_value_transforms(build_model(data, priors, "centered"))
        return model.compile_logp(jacobian=False)

    compiled = _compiled_once("joint logp", data, priors, compile_logp)

    def logp(theta, mu, lam, omega) -> float:
        point = {"theta": np.asarray(theta, dtype=float), "mu": np.asarray(mu, dtype=float),
                 "lam": np.asarray(lam, dtype=float), "omega": np.asarray(omega, dtype=float)}
        return float(compiled(point))

    return logp


def log_density_terms_function(data: GroupedData, priors: Priors):
    """(theta, mu, lam, omega) at K points -> the terms of log p(y, theta, mu, lam, omega) at
    each, unsummed.

    The centered reference model on the natural scale (no Jacobian), like `joint_logp_function`,
    with its graph vectorized over a leading axis of K points and compiled once: `theta` is
    (K, m), `mu`, `lam`, `omega` are (K,), and the result is a dict of every term of the joint
    (`hiercheck.models.joint.joint_terms`), elementwise: "lam", "omega", "mu" of shape (K,),
    "theta" (K, m), the terms log N(theta_i; mu, 1/(omega lam)), "y" (K, N), the terms
    log N(y_ij; theta_i, 1/lam) in the order of `data.values`, and, when a or b is 0,
    "lam_prior" (K,), the potential (a - 1) log lam - b lam that is then lam's prior. Their
    total is the joint log density; theta_i's full conditional is, up to a constant, its own
    term plus the y terms of its school's students, as no potential involves theta.
    """
    def compile_terms():
        model = remove_value_transforms(build_model(data, priors, "centered"))
        terms = joint_terms(model, jacobian=False)
        points = {"theta": pt.matrix("theta"), "mu": pt.vector("mu"), "lam": pt.vector("lam"),
                  "omega": pt.vector("omega")}
        batched = vectorize_graph(list(terms.values()),
                                  replace={value: points[value.name]
                                           for value in model.value_vars})
        with _quiet_graph_rewriter():
            compiled = model.compile_fn(batched, inputs=list(points.values()), point_fn=False)
        return list(terms), compiled

    names, compiled = _compiled_once("log density terms", data, priors, compile_terms)

    def terms_at(theta, mu, lam, omega) -> dict[str, np.ndarray]:
        arrays = (np.asarray(x, dtype=float) for x in (theta, mu, lam, omega))
        return dict(zip(names, compiled(*arrays)))

    return terms_at


def sample_nuts(data: GroupedData, priors: Priors, *, draws: int = 1000, chains: int = 4,
                seed: SeedLike = None, tune: int = 1000, backend: str = "pymc",
                parametrization: str = "centered", target_accept: float = 0.8,
                cores: int | None = None) -> az.InferenceData:
    """The engine interface on the reference model: NUTS through PyMC or nutpie.

    The seed (int, SeedSequence, Generator or None) fixes the draws whatever `cores` is. The
    result carries the divergences and the largest r_hat in its attrs (`divergences`,
    `max_r_hat`); a `NutsWarning` says when either is bad, without failing.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The prior parameters.
    draws : int, default 1000
        Draws kept per chain.
    chains : int, default 4
        Chains.
    seed : SeedLike, default None
        The seed the draws depend on.
    tune : int, default 1000
        Tuning (warm-up) iterations per chain, discarded.
    backend : {"pymc", "nutpie"}, default "pymc"
        Which NUTS implementation samples.
    parametrization : {"centered", "noncentered"}, default "centered"
        The reference model's parametrization (see `build_model`).
    target_accept : float, default 0.8
        NUTS' target acceptance rate during tuning.
    cores : int, optional
        Chains run in parallel (default: min(chains, 2)).

    Returns
    -------
    arviz.InferenceData
        The engine's result (see `hiercheck.models.engine.to_inference_data`), with
        `sample_stats.diverging` and attrs `divergences` and `max_r_hat`.

    Raises
    ------
    SettingsError
        If `draws`, `chains` or `tune` is not a valid count, `backend` or `parametrization` is
        unknown, or nutpie is asked for but not installed.

    Warns
    -----
    NutsWarning
        If any transition diverged or r_hat exceeds 1.01.
    """
    check_run_size(draws, chains)
    _check_settings(backend, parametrization, tune)
    integer_seed = int(np.random.default_rng(seed).integers(2**31))
    start = time.perf_counter()
    if backend == "pymc":
        trace = _sample_pymc(data, priors, parametrization, draws=draws, tune=tune, chains=chains,
                             seed=integer_seed, target_accept=target_accept, cores=cores)
    else:
        trace = _sample_nutpie(data, priors, parametrization, draws=draws, tune=tune,
                               chains=chains, seed=integer_seed, target_accept=target_accept,
                               cores=cores)
    elapsed = time.perf_counter() - start
    posterior = {name: trace.posterior[name].values for name in SAMPLED}
    diverging = trace.sample_stats["diverging"].values.astype(bool)
    settings = {"backend": backend, "parametrization": parametrization, "tune": tune,
                "target_accept": target_accept, "seed": seed}
    idata = to_inference_data(posterior, data, priors, engine=f"nuts-{backend}", settings=settings,
                              sampling_time=elapsed, sample_stats={"diverging": diverging})
    _record_diagnostics(idata)
    return idata


def sample_nutpie(data: GroupedData, priors: Priors, *, draws: int = 1000, chains: int = 4,
                  seed: SeedLike = None, **settings: Any) -> az.InferenceData:
    """`sample_nuts` with the nutpie backend (compiled once per design and priors).

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        The prior parameters.
    draws : int, default 1000
        Draws kept per chain.
    chains : int, default 4
        Chains.
    seed : SeedLike, default None
        The seed the draws depend on.
    **settings : Any
        Further keywords of `sample_nuts` (tune, parametrization, target_accept, cores).

    Returns
    -------
    arviz.InferenceData
        As `sample_nuts`.
    """
    return sample_nuts(data, priors, draws=draws, chains=chains, seed=seed, backend="nutpie",
                       **settings)


def _check_settings(backend: str, parametrization: str, tune: int) -> None:
    if backend not in BACKENDS:
        raise SettingsError(f"unknown NUTS backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if parametrization not in PARAMETRIZATIONS:
        raise SettingsError(f"unknown parametrization {parametrization!r}; "
                                f"choose from {', '.join(PARAMETRIZATIONS)}")
    require_integer("tune", tune, least=0)


def _design_key(data: GroupedData, priors: Priors, parametrization: str):
    """What a compiled model depends on: the design (labels, school of each score), not the
    scores, which are swapped in through pm.Data.
    """
    return (data.labels.tobytes(), data.labels.dtype.str, data.codes.tobytes(), priors,
            parametrization)


_models: dict = {}
_nutpie_models: dict = {}
_CACHE_SIZE = 4


def _remember(cache: dict, key, build):
    if key not in cache:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = build()
    return cache[key]


def _model_for(data: GroupedData, priors: Priors, parametrization: str) -> pm.Model:
    model = _remember(_models, _design_key(data, priors, parametrization),
                      lambda: build_model(data, priors, parametrization))
    model.set_data("scores", data.values)
    return model


def _sample_pymc(data, priors, parametrization, *, draws, tune, chains, seed, target_accept,
                 cores) -> az.InferenceData:
    model = _model_for(data, priors, parametrization)
    with model, warnings.catch_warnings(), _quiet_graph_rewriter():
        warnings.simplefilter("ignore", RuntimeWarning)  # PyMC repeats what we report below
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores or min(chains, 2),
                         random_seed=seed, target_accept=target_accept, progressbar=False,
                         compute_convergence_checks=False, var_names=list(SAMPLED))


def _sample_nutpie(data, priors, parametrization, *, draws, tune, chains, seed, target_accept,
                   cores) -> az.InferenceData:
    try:
        import nutpie
    except ImportError:
        raise SettingsError("the nutpie backend needs nutpie: pip install 'hiercheck[nutpie]'") from None

    def compile_model():
        with _quiet_graph_rewriter():
            return nutpie.compile_pymc_model(build_model(data, priors, parametrization))

    compiled = _remember(_nutpie_models, _design_key(data, priors, parametrization), compile_model)
    return nutpie.sample(compiled.with_data(scores=data.values), draws=draws, tune=tune,
                         chains=chains, cores=cores or min(chains, 2), seed=seed,
                         target_accept=target_accept, progress_bar=False)


@contextmanager
def _quiet_graph_rewriter():
    """PyTensor 2.38's elemwise fusion fails on graphs that pm.sample and nutpie compile and logs
    a traceback at ERROR level; the rewrite is then skipped, which costs speed, not correctness.
    """
    logger = logging.getLogger("pytensor.graph.rewriting.basic")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _record_diagnostics(idata: az.InferenceData) -> None:
    """Divergences and the largest r_hat (nan for one chain, where r_hat is undefined) into the
    attrs, and a warning when either is bad.
    """
    divergences = int(idata.sample_stats["diverging"].sum())
    max_r_hat = float("nan")
    if idata.posterior.sizes["chain"] > 1:
        r_hat = az.rhat(idata, var_names=list(POSTERIOR_VARIABLES))
        max_r_hat = float(max(float(r_hat[name].max()) for name in POSTERIOR_VARIABLES))
    for group in idata.groups():
        idata[group].attrs.update(divergences=divergences, max_r_hat=max_r_hat)
    problems = []
    if divergences:
        problems.append(f"{divergences} divergent transitions")
    if max_r_hat > MAX_R_HAT:
        problems.append(f"r_hat up to {max_r_hat:.3f} (> {MAX_R_HAT})")
    if problems:
        warnings.warn(f"NUTS on {idata.posterior.attrs['data']}: {' and '.join(problems)}",
                      NutsWarning, stacklevel=3)
