"""Conjugate full conditionals of a PyMC model, recognized from its joint density and verified.

For a block x (one free variable, or a tuple drawn jointly) with every other variable fixed,

    log p(x | rest) = log p(x, rest, y) + const.

A family is a set of sufficient statistics T(x) on a support, and x | rest is in it exactly when
log p(x | rest) = eta . T(x) + const for a natural parameter eta in the family's domain:

    family          support              T(x)                    parameters (PyMC's names)
    normal          R (each element)     x, x^2                  mu, sigma
    mvnormal        R^k                  x, x x'                 mu, cov
    gamma           x > 0                log x, x                alpha, beta (shape, rate)
    inversegamma    x > 0                log x, 1/x              alpha, beta
    beta            0 < x < 1            log x, log(1 - x)       alpha, beta
    dirichlet       the simplex          log x_k                 a
    wishart         SPD matrices         log|X|, X               nu, V
    inversewishart  SPD matrices         log|X|, X^{-1}          df, scale
                                                                 (`hiercheck.models.inverse_wishart`)

Nothing is matched link by link in the graph: eta is fitted from the model's own density at a
few points of the support and verified at others, so every link (X @ beta, theta[group],
lam * omega, exposures, sums and scalings) is handled by the same test. The graph says what it
is good at: which terms of the density read the block (its Markov blanket, named in `formula`),
the support (the variable's transform), and the gradient.

How each family is fitted, at one state or a batch of them in one evaluation of the model:

- Scalar families on x > 0 and 0 < x < 1 (gamma, inverse gamma, beta), element by element: the
  gradient of the log density is eta . T'(x) (gamma: (alpha - 1)/x - beta), linear in eta, so
  two points give eta; two more, every element moved by its own factor, must agree with it to
  `RTOL` of the gradient's scale. An element whose conditional reads another element fails that.
  Far in a tail one term of the gradient drowns the other in rounding (a gamma's (alpha - 1)/x
  beside its rate at x = 1e-30: the fit failed there, and at 1e-9 its rate was 6e-7 off); where a
  parameter's rounding error exceeds `DETERMINED` of itself, every element is fitted again about
  its mode on the line scale, found by bisecting the sign of the slope there.
- The quadratic families (normal, mvnormal), on R^n: the gradient is affine, h - P x, exactly
  when the log density is quadratic. P is found by moving the elements (all of a colour at once,
  when the structure is known), the mean is x + P^{-1} g(x), and the gradient at two draws of
  the fitted conditional must be P (mean - x). P's sparsity gives the structure: "elementwise"
  (diagonal: each element its own normal), "rows" (one k-variate normal per row of a (G, k)
  variable, e.g. the cheese model's beta, 88 stores of 4 coefficients) or "joint" (one
  multivariate normal).
- Matrix and simplex families (Wishart, inverse Wishart, Dirichlet): the log density of the
  block's Markov blanket at 3q points about the state is fitted by least squares in the q
  unknowns (eta and a constant) on two thirds of them, and the residual at every point must be
  below `RTOL` of the values' spread.

A conditional is claimed when every check passes at `RECOGNITION_STATES` states (the model's
initial point, jittered on PyMC's unconstrained scale, with the model's data) and eta lies in
the family's domain (a proper conditional). `parameters` and `draw` fit and verify again at
every state they are given, and raise `ConjugacyError` rather than return parameters that the
density does not confirm. A block that is not recognized is absent: never a wrong claim.

Tuples: each subset of two or more variables that are each normal on their own (at most
`MAX_TUPLE_VARIABLES` such variables) whose joint log conditional is quadratic and whose
elements are coupled (the subset is connected in the precision's graph) is listed as one
"joint" mvnormal, keyed by the tuple of names in the model's order; its values are the
variables' elements, flattened row-major, concatenated in that order (blood pressure's
(mu, beta)).

The joint log density on the natural scale, term by term, and its gradient are compiled batched
over points: once for the whole model, which recognition uses for every block it tries, and once
per recognized block for its Markov blanket's terms alone, which `parameters` and `draw` use. One
state costs a few evaluations of the blanket: a block that no observation reads (a hyperprior's
covariance) never evaluates the likelihood.
"""

from __future__ import annotations

__all__ = [
    "FAMILIES", "MAX_TUPLE_VARIABLES", "RECOGNITION_STATES", "RTOL", "ConjugateConditional",
    "auto_gibbs", "conjugate_conditionals", "sample",
]

import itertools
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse.csgraph import connected_components

from hiercheck.errors import ConjugacyError, require_integer
from hiercheck.models.joint import joint_terms
from hiercheck.samplers.distributions import draw_inverse_wishart

from .pymc_model import CompiledModel, batched_like, compile_batched

if TYPE_CHECKING:
    import arviz as az
    import pymc as pm

    from hiercheck._typing import SeedLike

FAMILIES = ("normal", "mvnormal", "gamma", "inversegamma", "beta", "dirichlet", "wishart",
            "inversewishart")
RTOL = 1e-7               # a fit's residual, relative to the scale of what it fits
ROUNDING = 1e-13          # a gradient's rounding error, relative to its largest term
DETERMINED = 1e-6         # a parameter's rounding error, relative to itself, at most
LINE_DOUBLINGS = 11       # brackets of a scalar's mode: steps of 1, 2, 4, ... on the line scale
LINE_BISECTIONS = 40      # then halvings of the bracket
RECOGNITION_STATES = 3
MAX_TUPLE_VARIABLES = 6   # 2^6 subsets of normal variables at most are tried as tuples
TERMS_PER_CALL = 4_000_000  # points x model size of one evaluation (memory, not speed)
ZERO_COUPLING = 1e-9      # |P_ij| below this times sqrt(P_ii P_jj): conditionally independent


# -- the model's density, compiled once ------------------------------------------------------------

class _Density:
    """log p(x, y) on the natural scale (no Jacobian), term by term (one term per free variable,
    observed variable and potential: its owner), and which variables each term reads.
    Evaluated through `_Evaluator`s: the whole model's (recognition tries many blocks with one
    compiled function) and each block's Markov blanket's (a conditional's draws evaluate only
    the terms that read it).
    """

    def __init__(self, model: pm.Model):
        from pymc.model.transform.conditioning import remove_value_transforms
        from pytensor.graph.traversal import ancestors

        self.compiled = CompiledModel(model)
        self.variables = self.compiled.variables
        self.observed = self.compiled.observed
        self.supports = {name: _support(model, model[name]) for name in self.variables}
        self.differentiable = tuple(name for name, support in self.supports.items()
                                    if support in ("real", "positive", "unit"))
        natural = remove_value_transforms(model)
        self.terms = joint_terms(natural, jacobian=False)
        self.owners = tuple(self.terms)
        # the inputs of the compiled functions, in their order: `variables` then `observed`
        # (the clone without transforms may list its free variables in another order)
        self.values = {name: natural.rvs_to_values[natural[name]]
                       for name in (*self.variables, *self.observed)}
        name_of = {value: name for name, value in self.values.items()}
        # which variables (free and observed) each owner's term reads: the Markov blankets
        self.inputs = {owner: frozenset(name_of[v] for v in ancestors([term]) if v in name_of)
                       for owner, term in self.terms.items()}
        self.reads = {owner: read & set(self.variables) for owner, read in self.inputs.items()}
        self._blankets: dict[tuple[str, ...], _Evaluator] = {}

    @cached_property
    def initial_point(self) -> dict[str, np.ndarray]:
        """The model's initial point, by value variable's name (PyMC's unconstrained scale)."""
        return self.compiled.model.initial_point()

    @cached_property
    def whole(self) -> _Evaluator:
        """Every term, and the gradient in every differentiable variable."""
        return _Evaluator(self, self.owners, self.differentiable)

    def blanket_evaluator(self, names: tuple[str, ...]) -> _Evaluator:
        """The terms that read the block, and the gradient in its variables: compiled once per
        block.
        """
        if names not in self._blankets:
            owners = tuple(owner for owner, read in zip(self.owners, self.blanket(names))
                           if read)
            self._blankets[names] = _Evaluator(
                self, owners, tuple(name for name in names if name in self.differentiable))
        return self._blankets[names]

    def blanket(self, names: tuple[str, ...]) -> np.ndarray:
        """Whether each owner's term reads any of `names`: the block's Markov blanket."""
        return np.array([bool(self.reads[owner] & set(names)) for owner in self.owners])

    def given(self, names: tuple[str, ...]) -> list[str]:
        """What the block's conditional reads: the free variables of its Markov blanket's terms
        (itself excepted) and the observed variables among their owners, in the model's order.
        """
        reading = [owner for owner, read in zip(self.owners, self.blanket(names)) if read]
        free = set().union(*(self.reads[owner] for owner in reading)) - set(names)
        return ([name for name in self.variables if name in free]
                + [name for name in self.observed if name in reading])


class _Evaluator:
    """Some of the model's terms, each summed, and their gradient in some variables (on R,
    x > 0 or (0, 1)), batched over a leading axis of K points; compiled on first use, with the
    variables the terms read as its only inputs.
    """

    def __init__(self, density: _Density, owners: tuple[str, ...], wrt: tuple[str, ...]):
        self.density, self.owners, self.wrt = density, owners, wrt
        read = set().union(*(density.inputs[owner] for owner in owners))
        self.inputs = tuple(name for name in density.values if name in read)
        size = sum(density.variables[name].size if name in density.variables
                   else np.size(density.compiled.data[name]) for name in self.inputs)
        self.chunk = max(1, TERMS_PER_CALL // max(size, 1))

    @cached_property
    def _function(self):
        import pytensor.tensor as pt
        from pytensor.graph.replace import vectorize_graph

        density = self.density
        batched = {density.values[name]: batched_like(density.values[name], name)
                   for name in self.inputs}
        sums = vectorize_graph([density.terms[owner].sum() for owner in self.owners],
                               replace=batched)
        wrt = [batched[density.values[name]] for name in self.wrt]
        gradients = pt.grad(pt.add(*sums).sum(), wrt, disconnected_inputs="ignore") if wrt else []
        return compile_batched(list(batched.values()), [*sums, *gradients])

    def __call__(self, points: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(K, owners) log density per owner and {name: (K, *shape)} gradients at K points
        (`points`: every input by name, free and observed); -inf and NaN for the points of a
        chunk in which a value failed PyMC's checks.
        """
        from pymc.logprob.utils import ParameterValueError

        model = self.density.compiled.model
        size = len(next(iter(points.values())))
        sums = np.empty((size, len(self.owners)))
        gradients = {name: np.empty((size, *self.density.variables[name].shape))
                     for name in self.wrt}
        for start in range(0, size, self.chunk):
            part = slice(start, start + self.chunk)
            try:
                outputs = self._function(*(np.asarray(points[name][part], dtype=model[name].dtype)
                                           for name in self.inputs))
            except ParameterValueError:  # a value outside its support (a Wishart's check)
                sums[part] = -np.inf
                for gradient in gradients.values():
                    gradient[part] = np.nan
                continue
            sums[part] = np.column_stack(outputs[:len(self.owners)])
            for name, gradient in zip(self.wrt, outputs[len(self.owners):]):
                gradients[name][part] = gradient
        sums[np.isnan(sums)] = -np.inf
        return sums, gradients


def _support(model: pm.Model, rv) -> str | None:
    """Where a free variable lives, read from its PyMC transform (and, for a Wishart, which has
    none, its distribution): "real", "positive", "unit", "simplex", "spd", or None (a discrete
    variable, or a support no family here covers).
    """
    if rv.type.dtype.startswith(("int", "uint", "bool")):
        return None
    transform = model.rvs_to_transforms.get(rv)
    name = None if transform is None else transform.name
    if name is None:
        if "Wishart" in type(rv.owner.op).__name__:
            return "spd"
        return "real"
    return {"log": "positive", "logodds": "unit", "simplex": "simplex",
            "log-cholesky": "spd"}.get(name)


_DENSITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _density_of(model: pm.Model) -> _Density:
    """The model's `_Density`, made once per model object."""
    if model not in _DENSITIES:
        _DENSITIES[model] = _Density(model)
    return _DENSITIES[model]


# -- a block at a batch of states -----------------------------------------------------------------

class _At:
    """A block at B states: its flat values x0 (B, n), and the log density of its Markov
    blanket with the block set to other values, every other variable and the observations held
    at each state, through `evaluator`.
    """

    def __init__(self, density: _Density, names: tuple[str, ...], state: dict, observed: dict,
                 evaluator: _Evaluator):
        self.density, self.names, self.evaluator = density, names, evaluator
        self.size = len(next(iter(state.values())))
        self.state, self.observed = state, observed
        self.shapes = [density.variables[name].shape for name in names]
        self.x0 = np.concatenate([np.reshape(state[name], (self.size, -1)) for name in names],
                                 axis=1)
        blanket = dict(zip(density.owners, density.blanket(names)))
        self.columns = np.array([blanket[owner] for owner in evaluator.owners])

    def evaluate(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The blanket's log density (B, K) and the gradient in the block (B, K, n), or None
        when the block is not differentiable, with the block at `values` (B, K, n).
        """
        count = values.shape[1]
        held = self.state | self.observed
        points = {name: np.repeat(np.asarray(held[name]), count, axis=0)
                  for name in self.evaluator.inputs if name not in self.names}
        points |= {name: value.reshape(self.size * count, *value.shape[2:])
                   for name, value in _split(values, self.names, self.density.variables).items()}
        sums, gradients = self.evaluator(points)
        log_density = sums[:, self.columns].sum(axis=1).reshape(self.size, count)
        if not all(name in gradients for name in self.names):
            return log_density, None
        flat = np.concatenate([gradients[name].reshape(self.size * count, -1)
                               for name in self.names], axis=1)
        return log_density, flat.reshape(self.size, count, -1)


def _split(flat: np.ndarray, names: tuple[str, ...], variables: Mapping
           ) -> dict[str, np.ndarray]:
    """{name: (..., *shape)} from a block's flat values (..., n), its variables in order."""
    sizes = [variables[name].size for name in names]
    parts = np.split(flat, np.cumsum(sizes)[:-1], axis=-1)
    return {name: np.reshape(part, (*flat.shape[:-1], *variables[name].shape))
            for name, part in zip(names, parts)}


def _verification_offsets(shape: tuple[int, ...]) -> np.ndarray:
    """Fixed offsets in [-1, 1) for the verification points: the same at every call, so that
    parameters do not depend on a random stream, and different per element, so that an element
    whose conditional reads another cannot pass by moving with it.
    """
    return np.random.default_rng(20261130).uniform(-1.0, 1.0, size=shape)


# -- the families: rules that fit and verify a block at B states --------------------------------

class _Scalar:
    """A family on an interval fitted element by element from the gradient, which is linear in
    eta: g(x) = eta_1 phi_1(x) + eta_2 phi_2(x). Subclasses give phi, the map to the interval,
    the parameters and the draw.
    """

    family: str
    structure = "elementwise"
    line_limit: float  # |z| beyond which x(z) rounds to an end of the interval

    def fit(self, at: _At) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Parameters (B, n) each, and whether each state passed (B,). Where rounding leaves a
        parameter undetermined at the state (far in a tail: a gamma's rate beside (alpha - 1)/x
        at x = 1e-30), every element is fitted again about its mode on the line scale
        (`_line_modes`); a parameter still undetermined there fails the state.
        """
        z0 = self.to_line(at.x0)
        parameters, ok, determined = self._fit_about(at, z0)
        if not determined.all():
            parameters, ok, determined = self._fit_about(at, self._line_modes(at, z0))
        return parameters, ok & determined.all(axis=1)

    def _fit_about(self, at: _At, z0: np.ndarray
                   ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Parameters fitted at z0 -+ 0.25 (line scale, (B, n)) and verified at two more
        points, whether each state passed (B,), and whether each element's parameters are
        determined (B, n): eta's error from rounding the gradient (`ROUNDING` of its scale,
        through the features) below `DETERMINED` of each parameter (each is eta + a constant).
        """
        offsets = np.stack([np.full(z0.shape[1], -0.25), np.full(z0.shape[1], 0.25),
                            *_verification_offsets((2, z0.shape[1]))])  # (4, n)
        x = self.from_line(z0[:, None, :] + offsets)
        _, g = at.evaluate(x)
        phi = self.features(x)  # (B, 4, n, 2)
        a, b = phi[:, :2, :, 0], phi[:, :2, :, 1]
        # far in a tail the terms overflow or cancel; `determined` then says so
        with np.errstate(all="ignore"):
            det = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
            eta = np.stack([(g[:, 0] * b[:, 1] - g[:, 1] * b[:, 0]) / det,
                            (a[:, 0] * g[:, 1] - a[:, 1] * g[:, 0]) / det], axis=-1)  # (B, n, 2)
            terms = phi[:, 2:] * eta[:, None]
            scale = np.abs(terms).sum(-1) + np.abs(g[:, 2:])
            exact = np.abs(terms.sum(-1) - g[:, 2:]) <= RTOL * scale
            parameters = self.parameters(eta[..., 0], eta[..., 1])
            proper = np.all([np.all(value > 0, axis=-1) for value in parameters.values()],
                            axis=0)
            ok = np.all(exact, axis=(1, 2)) & proper & np.isfinite(eta).all((1, 2))
            fit_scale = np.abs(g[:, :2]) + np.abs(phi[:, :2] * eta[:, None]).sum(-1)  # (B, 2, n)
            error = ROUNDING * (fit_scale[..., None] / np.abs(phi[:, :2])).max(axis=1)
            values = np.stack(list(parameters.values()), axis=-1)                  # (B, n, 2)
            determined = np.all(error <= DETERMINED * np.abs(values), axis=-1)
        return parameters, ok, determined

    def _line_modes(self, at: _At, z0: np.ndarray) -> np.ndarray:
        """Each element's mode on the line scale, where the slope of log p(x(z)) + log x'(z)
        changes sign: bracketed by steps doubling from z0 towards it (`LINE_DOUBLINGS`), then
        bisected (`LINE_BISECTIONS`). An element without a sign change stays at the far end
        of its bracket, where its fit fails.
        """
        def sign_of_slope(z):
            x = self.from_line(np.clip(z, -self.line_limit, self.line_limit))
            _, g = at.evaluate(x[:, None, :])
            with np.errstate(all="ignore"):
                return np.sign(self.line_slope(x, g[:, 0]))

        direction = sign_of_slope(z0)
        inner, outer = z0.copy(), z0 + direction
        for _ in range(LINE_DOUBLINGS):
            crossed = sign_of_slope(outer) != direction
            if crossed.all():
                break
            inner = np.where(crossed, inner, outer)
            outer = np.where(crossed, outer, z0 + 2 * (outer - z0))
        for _ in range(LINE_BISECTIONS):
            middle = (inner + outer) / 2
            before = sign_of_slope(middle) == direction
            inner, outer = np.where(before, middle, inner), np.where(before, outer, middle)
        return np.clip((inner + outer) / 2, -self.line_limit, self.line_limit)


class _Gamma(_Scalar):
    """Gamma(alpha, beta), shape and rate: g(x) = (alpha - 1)/x - beta."""

    family = "gamma"
    natural = "(alpha - 1) log {x} - beta {x} + const"
    to_line, from_line = staticmethod(np.log), staticmethod(np.exp)
    line_limit = 700.0  # e^700 is finite

    @staticmethod
    def line_slope(x, g):
        """d/dz of log p(e^z) + z: alpha - beta x for the gamma."""
        return x * g + 1

    @staticmethod
    def features(x):
        return np.stack([1 / x, -np.ones_like(x)], axis=-1)

    @staticmethod
    def parameters(eta_1, eta_2):
        return {"alpha": eta_1 + 1, "beta": eta_2}

    @staticmethod
    def draw(rng, parameters):
        return rng.standard_gamma(parameters["alpha"]) / parameters["beta"]


class _InverseGamma(_Gamma):
    """InvGamma(alpha, beta): g(x) = -(alpha + 1)/x + beta/x^2."""

    family = "inversegamma"
    natural = "-(alpha + 1) log {x} - beta / {x} + const"

    @staticmethod
    def features(x):
        return np.stack([-1 / x, x**-2.0], axis=-1)

    @staticmethod
    def parameters(eta_1, eta_2):
        return {"alpha": eta_1 - 1, "beta": eta_2}

    @staticmethod
    def draw(rng, parameters):
        return parameters["beta"] / rng.standard_gamma(parameters["alpha"])


class _Beta(_Scalar):
    """Beta(alpha, beta): g(x) = (alpha - 1)/x - (beta - 1)/(1 - x)."""

    family = "beta"
    natural = "(alpha - 1) log {x} + (beta - 1) log(1 - {x}) + const"
    line_limit = 36.0  # 1 - expit(36) is still above 0

    @staticmethod
    def line_slope(x, g):
        """d/dz of log p(expit z) + log x(1 - x): alpha (1 - x) - beta x."""
        return x * (1 - x) * g + 1 - 2 * x

    @staticmethod
    def to_line(x):
        return np.log(x) - np.log1p(-x)

    @staticmethod
    def from_line(z):
        return 1 / (1 + np.exp(-z))

    @staticmethod
    def features(x):
        return np.stack([1 / x, -1 / (1 - x)], axis=-1)

    @staticmethod
    def parameters(eta_1, eta_2):
        return {"alpha": eta_1 + 1, "beta": eta_2 + 1}

    @staticmethod
    def draw(rng, parameters):
        return rng.beta(parameters["alpha"], parameters["beta"])


@dataclass(frozen=True)
class _Quadratic:
    """The normal families: log p(x | rest) = -x'Px/2 + h'x + const on R^n, P block-diagonal
    with G blocks of k elements (`groups`: (G, k) indices into the flat block).
    """

    groups: np.ndarray
    structure: str  # "elementwise", "rows" or "joint"

    @property
    def family(self) -> str:
        """"normal" for an elementwise block, else "mvnormal"."""
        return "normal" if self.structure == "elementwise" else "mvnormal"

    @property
    def natural(self) -> str:
        """The family's log density in the block's name."""
        if self.structure == "elementwise":
            return "-({x} - E)^2 / (2 V) + const, where mu = E, sigma = sqrt(V)"
        return "-({x} - E)' V^{{-1}} ({x} - E) / 2 + const, where mu = E, cov = V"

    def fit(self, at: _At) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """mean (B, G, k) and precision (B, G, k, k), and whether each state passed (B,)."""
        count, k = self.groups.shape
        steps = 0.5 * (1 + np.abs(at.x0))
        moves = np.zeros((k + 1, at.x0.shape[1]))
        for j in range(k):
            moves[j + 1, self.groups[:, j]] = 1.0
        _, g = at.evaluate(at.x0[:, None] + moves * steps[:, None])
        dg = (g[:, :1] - g[:, 1:])[:, :, self.groups]                    # (B, k, G, k)
        precision = np.moveaxis(dg, 1, -1) / steps[:, self.groups][:, :, None, :]  # (B, G, k, k)
        magnitude = np.abs(precision).sum(-1, keepdims=True)
        symmetric = np.abs(precision - np.swapaxes(precision, -1, -2)) <= RTOL * magnitude
        precision = (precision + np.swapaxes(precision, -1, -2)) / 2
        ok = np.all(symmetric, axis=(1, 2, 3)) & np.isfinite(precision).all((1, 2, 3))
        precision[~ok] = np.eye(k)
        factor, definite = _cholesky(precision)
        ok &= definite
        gradient0 = g[:, 0][:, self.groups]
        mean = at.x0[:, self.groups] + _solve_cholesky(factor, gradient0)
        noise = 1.5 * _verification_offsets((2, count, k))           # (2, G, k)
        # x_v = mean + L'^{-1} z: a point a typical distance into the conditional
        shift = _solve_upper(factor[:, None], noise[None])               # (B, 2, G, k)
        points = np.repeat(at.x0[:, None], 2, axis=1)
        points[:, :, self.groups] = mean[:, None] + shift
        _, gv = at.evaluate(points)
        predicted = -np.einsum("bgij,bvgj->bvgi", precision, shift)
        observed = gv[:, :, self.groups]
        scale = (np.abs(observed) + np.abs(gradient0)[:, None]
                 + np.einsum("bgij,bvgj->bvgi", np.abs(precision),
                             np.abs(points[:, :, self.groups] - at.x0[:, None, self.groups])))
        ok &= np.all(np.abs(observed - predicted) <= RTOL * scale, axis=(1, 2, 3))
        return {"mean": mean, "precision": precision, "factor": factor}, ok


def _cholesky(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of (B, G, k, k) and whether each state's are all defined."""
    try:
        return np.linalg.cholesky(precision), np.ones(len(precision), dtype=bool)
    except np.linalg.LinAlgError:
        factors = np.empty_like(precision)
        definite = np.ones(len(precision), dtype=bool)
        for b in range(len(precision)):
            try:
                factors[b] = np.linalg.cholesky(precision[b])
            except np.linalg.LinAlgError:
                factors[b], definite[b] = np.eye(precision.shape[-1]), False
        return factors, definite


def _solve_cholesky(factor: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """P^{-1} v for P = L L' (factor (..., k, k), vector (..., k))."""
    inner = np.linalg.solve(factor, vector[..., None])
    return _solve_upper(factor, inner[..., 0])


def _solve_upper(factor: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """L'^{-1} v (factor (..., k, k) lower, vector (..., k), broadcast)."""
    upper = np.swapaxes(factor, -1, -2)
    shape = np.broadcast_shapes(upper.shape[:-2], vector.shape[:-1])
    return np.linalg.solve(np.broadcast_to(upper, (*shape, *upper.shape[-2:])),
                           np.broadcast_to(vector, (*shape, vector.shape[-1]))[..., None])[..., 0]


class _Values:
    """A family fitted from the values of the block's log density: f(x) = eta . T(x) + c at 3q
    points about the state (q unknowns), least squares on the first 2q, every residual below
    `RTOL` of the values' spread. Subclasses give T, the points, the parameters and the draw.
    """

    family: str
    structure = "whole"

    def fit(self, at: _At) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Parameters with a leading B axis, and whether each state passed (B,)."""
        x0 = at.x0.reshape(at.size, *self.shape)
        probe = self.features(x0[:, None])
        unknowns = probe.shape[-1] + 1
        points = self.points(x0, 3 * unknowns)                      # (B, 3q, *shape)
        f, _ = at.evaluate(points.reshape(at.size, 3 * unknowns, -1))
        design = np.concatenate([self.features(points), np.ones((*f.shape, 1))], axis=-1)
        f0 = f - f[:, :1]
        fitted = 2 * unknowns
        eta = np.einsum("bqk,bk->bq", np.linalg.pinv(design[:, :fitted]), f0[:, :fitted])
        residual = np.abs(np.einsum("bkq,bq->bk", design, eta) - f0).max(axis=1)
        spread = np.abs(f0).max(axis=1)
        ok = (residual <= RTOL * spread + 64 * np.finfo(float).eps * np.abs(f).max(axis=1))
        ok &= np.isfinite(f).all(axis=1) & np.isfinite(eta).all(axis=1)
        parameters, proper = self.parameters(eta[:, :-1])
        return parameters, ok & proper


@dataclass(frozen=True)
class _Dirichlet(_Values):
    """Dirichlet(a) on the simplex (each row of a (..., K) variable its own): f = sum (a - 1)
    log x.
    """

    shape: tuple[int, ...]
    family = "dirichlet"
    natural = "sum_k (a_k - 1) log {x}_k + const"

    @staticmethod
    def features(x):
        return np.log(x).reshape(*x.shape[:2], -1)

    def points(self, x0, count):
        concentration = 1 + 50 * np.repeat(x0[:, None], count, axis=1)
        gammas = np.random.default_rng(20261130).standard_gamma(concentration)
        return gammas / gammas.sum(-1, keepdims=True)

    def parameters(self, eta):
        a = eta.reshape(len(eta), *self.shape) + 1
        return {"a": a}, np.all(a.reshape(len(a), -1) > 0, axis=1)

    @staticmethod
    def draw(rng, parameters):
        gammas = rng.standard_gamma(parameters["a"])
        return gammas / gammas.sum(-1, keepdims=True)


@dataclass(frozen=True)
class _Wishart(_Values):
    """Wishart(nu, V) on p x p SPD matrices: f = ((nu - p - 1)/2) log|X| - tr(V^{-1} X)/2."""

    shape: tuple[int, ...]
    family = "wishart"
    natural = "((nu - p - 1)/2) log|{x}| - tr(V^{{-1}} {x})/2 + const"

    def features(self, x):
        return _matrix_features(x, x)

    def points(self, x0, count):
        return _congruent(x0, np.random.default_rng(20261130), 0.3, count)

    def parameters(self, eta):
        p = self.shape[-1]
        half_inverse = -_symmetric(eta[:, 1:], p)        # V^{-1}/2
        _, definite = _cholesky(half_inverse[:, None])
        safe = np.where(definite[:, None, None], half_inverse, np.eye(p))
        nu = 2 * eta[:, 0] + p + 1
        return {"nu": nu, "V": np.linalg.inv(2 * safe)}, definite & (nu > p - 1)

    @staticmethod
    def draw(rng, parameters):
        # W ~ Wishart(nu, V) exactly when W^{-1} ~ IW(nu, V^{-1}); symmetric to the last bit,
        # as PyMC's Wishart density requires
        draw = np.linalg.inv(_draw_inverse_wisharts(rng, parameters["nu"],
                                                    np.linalg.inv(parameters["V"])))
        return (draw + np.swapaxes(draw, -1, -2)) / 2


@dataclass(frozen=True)
class _InverseWishart(_Wishart):
    """IW(df, scale): f = -((df + p + 1)/2) log|X| - tr(scale X^{-1})/2."""

    family = "inversewishart"
    natural = "-((df + p + 1)/2) log|{x}| - tr(scale {x}^{{-1}})/2 + const"

    def features(self, x):
        return _matrix_features(x, np.linalg.inv(x))

    def parameters(self, eta):
        p = self.shape[-1]
        scale = -2 * _symmetric(eta[:, 1:], p)
        _, definite = _cholesky(scale[:, None])
        df = -2 * eta[:, 0] - p - 1
        return {"df": df, "scale": scale}, definite & (df > p - 1)

    @staticmethod
    def draw(rng, parameters):
        return _draw_inverse_wisharts(rng, parameters["df"], parameters["scale"])


def _matrix_features(x: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """(log|X|, the distinct entries of `linear` with each off-diagonal one doubled): then
    eta . T = eta_0 log|X| + tr(B linear) for the symmetric B of eta's other entries.
    """
    p = x.shape[-1]
    rows, cols = np.triu_indices(p)
    weights = np.where(rows == cols, 1.0, 2.0)
    _, log_det = np.linalg.slogdet(x)
    return np.concatenate([log_det[..., None], linear[..., rows, cols] * weights], axis=-1)


def _symmetric(entries: np.ndarray, p: int) -> np.ndarray:
    """The symmetric (B, p, p) matrices of upper-triangle entries (B, p(p+1)/2)."""
    rows, cols = np.triu_indices(p)
    matrix = np.zeros((len(entries), p, p))
    matrix[:, rows, cols] = entries
    matrix[:, cols, rows] = entries
    return matrix


def _draw_inverse_wisharts(rng: np.random.Generator, df: np.ndarray, scale: np.ndarray
                           ) -> np.ndarray:
    """IW(df_b, scale_b) for each b (df (B,), scale (B, p, p)), by Bartlett's decomposition:
    one batched draw when the df are equal (a consistency state's reference sample).
    """
    if np.all(df == df[0]):
        return draw_inverse_wishart(rng, float(df[0]), scale)
    return np.stack([draw_inverse_wishart(rng, float(d), s) for d, s in zip(df, scale)])


# -- recognition -----------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ConjugateConditional:
    """The exact full conditional of a block of a PyMC model, in a recognized family.

    Attributes
    ----------
    names : tuple of str
        The free variables of the block, in the model's order.
    family : str
        The lower-case name of the PyMC distribution of the family (`FAMILIES`).
    structure : str
        "elementwise" (each element of a variable its own conditional, independently),
        "rows" (one k-variate normal per row of a (G, k) variable), "joint" (one multivariate
        normal of the block's flat values) or "whole" (one matrix, or one simplex per row).
    formula : str
        The conditional in plain text, in the model's names: what it is given (its Markov
        blanket), its family and the family's log density.
    """

    names: tuple[str, ...]
    family: str
    structure: str
    formula: str
    _density: _Density = field(repr=False)
    _rule: object = field(repr=False)

    @property
    def key(self) -> str | tuple[str, ...]:
        """The block as `check_gibbs` keys it: a name, or a tuple of names."""
        return self.names[0] if len(self.names) == 1 else self.names

    def parameters(self, state: Mapping, data: Mapping | None = None) -> dict[str, np.ndarray]:
        """The conditional's parameters at a state (or a batch of states), fitted from the
        model's density and verified there.

        Parameters
        ----------
        state : Mapping
            Every free variable's value on its natural scale, as `check_gibbs` passes it: of the
            variable's shape, or (B, *shape) for a batch of B states.
        data : Mapping, optional
            The observed variables by name (others are ignored); of the variable's shape, or
            (B, *shape) for each state its own. Default: the model's data.

        Returns
        -------
        dict of str to numpy.ndarray
            Named as the family's PyMC distribution names them: normal mu, sigma (the block's
            shape); mvnormal mu, cov ((..., k) and (..., k, k): one per row for "rows", the flat
            block for "joint"); gamma, inversegamma and beta alpha, beta; dirichlet a; wishart
            nu, V; inversewishart df, scale. A batch puts B first.

        Raises
        ------
        ConjugacyError
            If the density at a state does not confirm the family (or gives an improper one).
        """
        parameters, batched = self._parameters(state, data)
        return parameters if batched else {name: value[0] for name, value in parameters.items()}

    def draw(self, rng: np.random.Generator, state: Mapping, data: Mapping | None = None
             ) -> np.ndarray | tuple[np.ndarray, ...]:
        """An exact draw of the block, with `check_gibbs`'s signature: one state, or a batch.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of the draw.
        state : Mapping
            As for `parameters`.
        data : Mapping, optional
            As for `parameters`.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            The new value of the variable ((B, *shape) for a batch), or a tuple of them, in
            the order of `names`, for a tuple block.

        Raises
        ------
        ConjugacyError
            As `parameters`.
        """
        parameters, batched = self._parameters(state, data)
        values = self._values(self._draw_flat(rng, parameters))
        values = [value if batched else value[0] for value in values]
        return values[0] if len(values) == 1 else tuple(values)

    def draws(self, rng: np.random.Generator, state: Mapping, data: Mapping | None = None, *,
              size: int) -> np.ndarray | tuple[np.ndarray, ...]:
        """`size` independent exact draws at one state, its parameters fitted once: what a
        reference sample of the conditional needs (a draw per state would fit `size` times).

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of the draws.
        state : Mapping
            One state, as for `parameters`.
        data : Mapping, optional
            As for `parameters`.
        size : int
            The number of draws.

        Returns
        -------
        numpy.ndarray or tuple of numpy.ndarray
            (size, *shape) for the variable, or a tuple of them in the order of `names`.

        Raises
        ------
        ConjugacyError
            As `parameters`.
        """
        parameters, _ = self._parameters(state, data)
        repeated = {name: np.repeat(value[:1], size, axis=0) for name, value in parameters.items()}
        values = self._values(self._draw_flat(rng, repeated))
        return values[0] if len(values) == 1 else tuple(values)

    # -- helpers -------------------------------------------------------------------------------

    def _parameters(self, state: Mapping, data: Mapping | None
                    ) -> tuple[dict[str, np.ndarray], bool]:
        """The named parameters with a leading batch axis, and whether `state` was a batch."""
        at, batched = _block_at(self._density, self.names, state, data,
                                self._density.blanket_evaluator(self.names))
        fitted, ok = self._rule.fit(at)
        if not ok.all():
            label = ", ".join(self.names)
            raise ConjugacyError(f"the conditional of {label} is not {self.family} at state "
                                 f"{int(np.argmin(ok))} of {at.size}: its log density is not of "
                                 "the family's form there, or the fitted family is improper")
        return self._named(fitted, at), batched

    def _named(self, fitted: dict, at: _At) -> dict[str, np.ndarray]:
        """The fit's parameters under the family's PyMC names and in the block's shapes."""
        if isinstance(self._rule, _Quadratic):
            covariance = np.linalg.inv(fitted["precision"])
            covariance = (covariance + np.swapaxes(covariance, -1, -2)) / 2
            mean = fitted["mean"]
            if self.structure == "elementwise":
                return {"mu": mean.reshape(at.size, *at.shapes[0]),
                        "sigma": np.sqrt(covariance[..., 0, 0]).reshape(at.size, *at.shapes[0])}
            if self.structure == "rows":
                shape = at.shapes[0]
                return {"mu": mean.reshape(at.size, *shape),
                        "cov": covariance.reshape(at.size, *shape, shape[-1])}
            return {"mu": mean[:, 0], "cov": covariance[:, 0]}
        if isinstance(self._rule, _Scalar):
            return {name: value.reshape(at.size, *at.shapes[0]) for name, value in fitted.items()}
        return fitted

    def _values(self, draw: np.ndarray) -> list[np.ndarray]:
        """A draw (B, ...) of the family as one array (B, *shape) per variable of the block."""
        return list(_split(draw.reshape(len(draw), -1), self.names,
                           self._density.variables).values())

    def _draw_flat(self, rng: np.random.Generator, parameters: dict) -> np.ndarray:
        """A draw (B, *family's shape) from parameters with a leading B axis."""
        if self.family == "normal":
            return parameters["mu"] + parameters["sigma"] * rng.standard_normal(
                parameters["mu"].shape)
        if self.family == "mvnormal":
            factor = np.linalg.cholesky(parameters["cov"])
            noise = rng.standard_normal(parameters["mu"].shape)
            return parameters["mu"] + np.einsum("...ij,...j->...i", factor, noise)
        return self._rule.draw(rng, parameters)


def _block_at(density: _Density, names: tuple[str, ...], state: Mapping,
              data: Mapping | None, evaluator: _Evaluator) -> tuple[_At, bool]:
    """The block at the states of `state` (one, or a batch when the block's first variable has
    one more axis than its shape), with the observations of `data` (the model's by default),
    evaluated through `evaluator`, and whether it was a batch.
    """
    first = density.variables[names[0]]
    batched = np.ndim(state[names[0]]) == len(first.shape) + 1
    size = len(np.asarray(state[names[0]])) if batched else 1
    states = {name: np.broadcast_to(np.asarray(state[name], dtype=float), (size, *v.shape))
              for name, v in density.variables.items()}
    model_data = density.compiled.data
    data = model_data if data is None else data
    observed = {name: np.broadcast_to(np.asarray(data.get(name, model_data[name])),
                                      (size, *np.shape(model_data[name])))
                .astype(density.compiled.model[name].dtype) for name in density.observed}
    return _At(density, names, states, observed, evaluator), batched


def _recognition_states(density: _Density, seed: SeedLike) -> list[dict[str, np.ndarray]]:
    """RECOGNITION_STATES states: the model's initial point jittered on PyMC's unconstrained
    scale by N(0, s^2), s from 0.1 to 1 (the later states further out), on the natural scale.
    """
    rng = np.random.default_rng(seed)
    return [_jittered(density, rng, spread)
            for spread in np.linspace(0.1, 1.0, RECOGNITION_STATES)]


def _jittered(density: _Density, rng: np.random.Generator, spread: float
              ) -> dict[str, np.ndarray]:
    """The model's initial point with N(0, spread^2) added to each continuous variable's values
    on PyMC's unconstrained scale, on the natural scale.
    """
    compiled = density.compiled
    model = compiled.model
    start = density.initial_point
    u = {}
    for rv in model.free_RVs:
        value = np.asarray(start[model.rvs_to_values[rv].name], dtype=float)
        jitter = 0.0 if compiled.variables[rv.name].discrete else spread
        if density.supports[rv.name] == "spd" and model.rvs_to_transforms.get(rv) is None:
            # a matrix kept on its natural scale (a Wishart) must stay symmetric and definite
            u[rv.name] = _congruent(value[None], rng, 0.3 * jitter, 1)[:, 0]
        else:
            u[rv.name] = (value + jitter * rng.standard_normal(value.shape))[None]
    return {name: value[0] for name, value in compiled.to_natural(u).items()}


def _congruent(x0: np.ndarray, rng: np.random.Generator, spread: float, count: int
               ) -> np.ndarray:
    """`count` SPD matrices M X M' about each X of x0 (B, p, p), M = I + spread Z, Z standard
    normal: (B, count, p, p), symmetric to the last bit.
    """
    p = x0.shape[-1]
    mixing = np.eye(p) + spread * rng.standard_normal((count, p, p))
    points = mixing @ x0[:, None] @ np.swapaxes(mixing, -1, -2)
    return (points + np.swapaxes(points, -1, -2)) / 2


def _candidates(density: _Density, name: str) -> list:
    """The rules that may fit the variable, by its support."""
    support, shape = density.supports[name], density.variables[name].shape
    if support == "positive":
        return [_Gamma(), _InverseGamma()]
    if support == "unit":
        return [_Beta()]
    if support == "simplex":
        return [_Dirichlet(shape)]
    if support == "spd" and len(shape) == 2:
        return [_Wishart(shape), _InverseWishart(shape)]
    return []


def _recognized(density: _Density, names: tuple[str, ...], rule, states: list[dict]) -> bool:
    """Whether the rule fits the block at every recognition state."""
    try:
        with np.errstate(all="ignore"):  # a point far from the family's form overflows
            _, ok = rule.fit(_block_at(density, names, _stacked(states), None, density.whole)[0])
    except np.linalg.LinAlgError:
        return False
    return bool(ok.all())


def _stacked(states: list[dict]) -> dict[str, np.ndarray]:
    """A batch of states from a list of them."""
    return {name: np.stack([np.asarray(s[name], dtype=float) for s in states])
            for name in states[0]}


def _precision_pattern(density: _Density, names: tuple[str, ...], states: list[dict]
                       ) -> np.ndarray | None:
    """Where the block's precision is not zero at any recognition state, (n, n) booleans; None
    where the block's log conditional is not quadratic (with a proper precision) at one of them.
    """
    n = sum(density.variables[name].size for name in names)
    rule = _Quadratic(np.arange(n)[None], "joint")
    with np.errstate(all="ignore"):
        fitted, ok = rule.fit(_block_at(density, names, _stacked(states), None, density.whole)[0])
    if not ok.all():
        return None
    precision = fitted["precision"][:, 0]
    diagonal = np.sqrt(np.abs(np.einsum("bii->bi", precision)))
    bound = ZERO_COUPLING * diagonal[:, :, None] * diagonal[:, None, :]
    return np.any(np.abs(precision) > bound, axis=0)


def _quadratic_rule(density: _Density, name: str, pattern: np.ndarray) -> _Quadratic:
    """The structure of a normal variable from its precision's pattern."""
    shape = density.variables[name].shape
    n = pattern.shape[0]
    if not (pattern & ~np.eye(n, dtype=bool)).any():
        return _Quadratic(np.arange(n)[:, None], "elementwise")
    if len(shape) >= 2:
        rows = np.arange(n).reshape(-1, shape[-1])
        within = np.zeros_like(pattern)
        for row in rows:
            within[np.ix_(row, row)] = True
        if not (pattern & ~within).any():
            return _Quadratic(rows, "rows")
    return _Quadratic(np.arange(n)[None], "joint")


def _formula(density: _Density, names: tuple[str, ...], rule) -> str:
    """The conditional in plain text, in the model's names."""
    block = ", ".join(names) if len(names) > 1 else names[0]
    subject = f"({block})" if len(names) > 1 else block
    given = ", ".join(density.given(names)) or "nothing"
    where = {"elementwise": (f", independently for each element of {block}"
                             if density.variables[names[0]].size > 1 else ""),
             "rows": f", independently for each row {block}[i, :]",
             "joint": "", "whole": ""}[rule.structure]
    natural = rule.natural.format(x=subject)
    return (f"{subject} | {given} ~ {rule.family}{where}: log p({subject} | {given}) = "
            f"{natural}; the parameters computed from the model's joint density at each state")


def conjugate_conditionals(model: pm.Model, *, seed: int = 0
                           ) -> dict[str | tuple[str, ...], ConjugateConditional]:
    """The exact full conditionals of a PyMC model's blocks in a recognized family (module
    docstring).

    Parameters
    ----------
    model : pymc.Model
        The model: priors, likelihood and observed data.
    seed : int, default 0
        Seeds the jitter of the recognition states.

    Returns
    -------
    dict
        {name, or tuple of names in the model's order: ConjugateConditional}: each free variable
        whose full conditional is recognized, then each tuple of coupled normal variables whose
        joint conditional is (module docstring). A block that is not recognized is absent.

    Raises
    ------
    SettingsError
        If the model has no observed variable or no free variable (`CompiledModel`).

    Examples
    --------
    >>> import numpy as np, pymc as pm                                  # doctest: +SKIP
    >>> with pm.Model() as model:                                       # doctest: +SKIP
    ...     lam = pm.Gamma("lam", 2.0, 1.0)
    ...     pm.Poisson("y", lam, observed=np.array([3, 1, 4]))
    >>> lam = conjugate_conditionals(model)["lam"]                      # doctest: +SKIP
    >>> lam.family, {k: round(float(v), 9) for k, v in lam.parameters({"lam": 1.0}).items()}
    ... # doctest: +SKIP
    ('gamma', {'alpha': 10.0, 'beta': 4.0})
    """
    density = _density_of(model)
    states = _recognition_states(density, seed)
    blocks, normal = [], []
    for name, support in density.supports.items():
        rule = None
        if support == "real":
            pattern = _precision_pattern(density, (name,), states)
            if pattern is not None:
                rule = _quadratic_rule(density, name, pattern)
                normal.append(name)
        else:
            rule = next((r for r in _candidates(density, name)
                         if _recognized(density, (name,), r, states)), None)
        if rule is not None:
            blocks.append(((name,), rule))
    if len(normal) <= MAX_TUPLE_VARIABLES:
        for names in _coupled_tuples(density, normal, states):
            n = sum(density.variables[name].size for name in names)
            blocks.append((names, _Quadratic(np.arange(n)[None], "joint")))
    found = [ConjugateConditional(names, rule.family, rule.structure,
                                  _formula(density, names, rule), density, rule)
             for names, rule in blocks]
    return {conditional.key: conditional for conditional in found}


def _coupled_tuples(density: _Density, normal: list[str], states: list[dict]
                    ) -> list[tuple[str, ...]]:
    """Every subset of two or more normal variables whose joint log conditional is quadratic
    and proper and whose elements are coupled (connected through the precision's off-diagonal
    entries), in the model's order.
    """
    tuples = []
    for count in range(2, len(normal) + 1):
        for names in itertools.combinations(normal, count):
            pattern = _precision_pattern(density, names, states)
            if pattern is None:
                continue
            sizes = [density.variables[name].size for name in names]
            owner = np.repeat(np.arange(len(names)), sizes)
            coupled = np.zeros((len(names), len(names)), dtype=bool)
            rows, cols = np.nonzero(pattern)
            coupled[owner[rows], owner[cols]] = True
            if connected_components(coupled, directed=False)[0] == 1:
                tuples.append(names)
    return tuples


# -- a complete sampler ----------------------------------------------------------------------------

def auto_gibbs(model: pm.Model, *, seed: int = 0) -> dict[str, Callable]:
    """A Gibbs sampler of the model made of its exact conditionals, one block per free variable
    in the model's order, for `check_gibbs` (each function takes one state or a batch:
    `check_gibbs(model, auto_gibbs(model), batched=True)` makes the fewest calls).

    Parameters
    ----------
    model : pymc.Model
        The model: priors, likelihood and observed data.
    seed : int, default 0
        Seeds the recognition states (`conjugate_conditionals`).

    Returns
    -------
    dict of str to callable
        {name: draw(rng, state, data)}, each named "conjugate_NAME".

    Raises
    ------
    ConjugacyError
        If a free variable's full conditional is not recognized, naming every such variable.
    """
    conditionals = conjugate_conditionals(model, seed=seed)
    missing = [name for name in _density_of(model).variables if name not in conditionals]
    if missing:
        raise ConjugacyError(f"no exact conditional for {', '.join(map(repr, missing))}: "
                             "auto_gibbs needs every free variable's full conditional in a "
                             f"recognized family ({', '.join(FAMILIES)})")
    return {name: _named_draw(conditionals[name]) for name in _density_of(model).variables}


def _named_draw(conditional: ConjugateConditional) -> Callable:
    """The conditional's draw as a plain function named after its block."""
    def draw(rng, state, data):
        return conditional.draw(rng, state, data)
    draw.__name__ = draw.__qualname__ = f"conjugate_{'_'.join(conditional.names)}"
    return draw


def sample(model: pm.Model | str, *, draws: int = 1000, chains: int = 4,
           seed: SeedLike = None, tune: int = 500) -> az.InferenceData:
    """The `auto_gibbs` sampler as an engine: `chains` chains, swept together as one batch by
    the sweep `check_gibbs` runs (`generic.sweep`), each started at the model's initial point
    jittered on PyMC's unconstrained scale.

    Parameters
    ----------
    model : pymc.Model or str
        The model, or the name of a built-in model (`hiercheck validate --model NAME`) to build
        on its data.
    draws, chains : int
        Kept sweeps per chain, and chains.
    seed : int, SeedSequence or None
        Fixes the draws.
    tune : int, default 500
        Sweeps discarded at the start of each chain.

    Returns
    -------
    arviz.InferenceData
        posterior: every free variable, dims (chain, draw, *its shape); attrs: engine
        "auto-gibbs", the settings and the time.

    Raises
    ------
    ConjugacyError
        If a free variable's full conditional is not recognized (`auto_gibbs`).
    SettingsError
        If `draws`, `chains` or `tune` is not an integer in range, or no built-in model has the
        name.
    """
    from hiercheck.samplers.sweeps import to_inference_data

    from .builtin_models import get_builtin
    from .generic import Batch, parse_conditionals, sweep

    if isinstance(model, str):
        builtin = get_builtin(model)
        model = builtin.build_model(builtin.load())
    require_integer("draws", draws)
    require_integer("chains", chains)
    require_integer("tune", tune, least=0)
    density = _density_of(model)
    blocks = parse_conditionals(auto_gibbs(model), density.variables, batched=True)
    batch = Batch.of(density.compiled, chains)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    state = _stacked([_jittered(density, rng, 1.0) for _ in range(chains)])
    kept = {name: np.empty((chains, draws, *v.shape)) for name, v in density.variables.items()}
    for step in range(tune + draws):
        state = sweep(rng, state, batch, blocks, density.variables)
        if step >= tune:
            for name in kept:
                kept[name][:, step - tune] = state[name]
    dims = {name: list(model.named_vars_to_dims.get(name, ())) for name in kept}
    coords = {dim: model.coords[dim] for names in dims.values() for dim in names}
    return to_inference_data(kept, coords=coords, dims=dims, constant_data={},
                             engine="auto-gibbs", settings={"tune": tune, "seed": seed},
                             priors={}, data_name=model.name or "the PyMC model",
                             sampling_time=time.perf_counter() - started)
