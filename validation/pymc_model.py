"""A user's PyMC model as the generic checks see it, and the functions they share, compiled once.

`CompiledModel(model)` reads the model (its free variables with their shapes, which are discrete
and which have an improper prior; the observed variables; the data a user's draw function
receives) and compiles, on first use, five batched functions over a leading axis of K points:

    evaluate(u, y)        the joint log density term by term (`hiercheck.models.joint`: one
                          term per element of every variable, one per observed value, and each
                          potential's) at K points of the free variables on PyMC's
                          unconstrained scale u (log for positive variables, log-odds for
                          intervals; the Jacobian included), with K sets of observations y; and
                          the natural values x of those points
    to_unconstrained(x)   u from the natural values x (each transform's forward map)
    to_natural(u)         x from u (each transform's backward map)
    simulate_prior(M)     M independent draws of (free variables, observations) from the model
    simulate_observed(x)  one draw of the observations given each of K points x

The unconstrained scale is where a grid or a random walk sees a smooth density without
boundaries; the density there is the natural one times |dx/du|, so its conditionals are the
natural conditionals carried over by a monotone map. A transform may change a variable's number
of values: a covariance matrix's log-Cholesky factor (`hiercheck.models.inverse_wishart`) has
p(p+1)/2 for p^2, a Dirichlet's simplex K - 1 for K (`Variable.unconstrained_shape`). Batching
turns a Python loop over grid points, chains or replications into one call, and
`vectorize_graph` does it without changing the model. The model's small linear algebra (a
multivariate normal's Cholesky factor and solves) is then batched by numpy rather than looped
over points (`batched_linear_algebra`).

`sample_nuts` runs PyMC's NUTS (compound steps for discrete variables) on the model's data.
"""

from __future__ import annotations

__all__ = ["CompiledModel", "IMPROPER_PRIORS", "Variable", "batched_like", "batched_linear_algebra",
           "compile_batched", "quiet_pytensor"]

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from hiercheck.errors import SettingsError
from hiercheck.models.joint import joint_terms

if TYPE_CHECKING:
    import pymc as pm
    from pytensor.compile.function.types import Function
    from pytensor.tensor import TensorVariable

    from hiercheck._typing import SeedLike

IMPROPER_PRIORS = ("FlatRV", "HalfFlatRV")  # pm.Flat, pm.HalfFlat: no prior to simulate from


@dataclass(frozen=True)
class Variable:
    """A free variable of the model: its name, shapes (no batch axes), and kind.

    Attributes
    ----------
    name : str
        The variable's name in the model.
    shape : tuple of int
        Its shape, without batch axes; () for a scalar.
    discrete : bool
        Whether its dtype is an integer or boolean one.
    improper : bool
        Whether its prior is improper (`IMPROPER_PRIORS`: pm.Flat, pm.HalfFlat), so that it
        cannot be simulated.
    unconstrained_shape : tuple of int
        The shape of its value on PyMC's unconstrained scale; `shape` when not given (no
        transform, or one that keeps the number of values).
    transform : str or None
        The name of PyMC's transform ("log", "log-cholesky", ...), None without one.
    """

    name: str
    shape: tuple[int, ...]
    discrete: bool
    improper: bool
    unconstrained_shape: tuple[int, ...] | None = None
    transform: str | None = None

    def __post_init__(self):
        if self.unconstrained_shape is None:
            object.__setattr__(self, "unconstrained_shape", self.shape)

    @property
    def size(self) -> int:
        """The number of elements, prod(shape); 1 for a scalar."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def unconstrained_size(self) -> int:
        """The number of values on the unconstrained scale, prod(unconstrained_shape)."""
        return int(np.prod(self.unconstrained_shape, dtype=np.int64))

    @property
    def resized(self) -> bool:
        """Whether PyMC's transform changes the number of values (a covariance matrix, p^2
        values, to its log-Cholesky factor's p(p+1)/2).
        """
        return self.unconstrained_size != self.size

    def element_names(self) -> list[str]:
        """'beta[0]', 'beta[1]', ... (row-major), or the bare name of a scalar.

        Returns
        -------
        list of str
            One name per element, 'name[i,j]' for more than one axis.
        """
        if not self.shape:
            return [self.name]
        return [f"{self.name}[{','.join(map(str, index))}]" for index in np.ndindex(*self.shape)]

    def unconstrained_names(self) -> list[str]:
        """One name per value on the unconstrained scale: `element_names` where the transform
        keeps the number of values, else 'Sigma:u[0]', 'Sigma:u[1]', ...

        Returns
        -------
        list of str
            `unconstrained_size` names.
        """
        if not self.resized:
            return self.element_names()
        return [f"{self.name}:u[{j}]" for j in range(self.unconstrained_size)]


class CompiledModel:
    """A PyMC model's variables and data, and its batched functions (module docstring).

    Parameters
    ----------
    model : pymc.Model
        The reference: priors, likelihood, observed data.

    Raises
    ------
    SettingsError
        If the model has no observed variable or no free variable.

    Attributes
    ----------
    model : pymc.Model
        The model.
    variables : dict[str, Variable]
        The free variables by name, in the model's order.
    observed : tuple of str
        The observed variables' names.
    potentials : tuple of str
        The potentials' names ("unnamed" for one without a name).
    """

    def __init__(self, model: pm.Model):
        self.model = model
        if not model.observed_RVs:
            raise SettingsError("the model has no observed data: the checks compare a sampler "
                                "of a posterior, so at least one variable needs observed=...")
        if not model.free_RVs:
            raise SettingsError("the model has no free variable to sample")
        shapes = {name: tuple(int(s) for s in shape)
                  for name, shape in model.eval_rv_shapes().items()}  # variables and values
        self.variables = {}
        for rv in model.free_RVs:
            transform = model.rvs_to_transforms.get(rv)
            self.variables[rv.name] = Variable(
                rv.name, shapes[rv.name],
                discrete=rv.type.dtype.startswith(("int", "uint", "bool")),
                improper=type(rv.owner.op).__name__ in IMPROPER_PRIORS,
                unconstrained_shape=shapes[model.rvs_to_values[rv].name],
                transform=None if transform is None else transform.name)
        self.observed = tuple(rv.name for rv in model.observed_RVs)
        self.potentials = tuple(p.name or "unnamed" for p in model.potentials)
        self._observed_data_name = {}  # observed variable -> the pm.Data holding its values
        for rv in model.observed_RVs:
            value = model.rvs_to_values[rv]
            if value in model.data_vars:
                self._observed_data_name[rv.name] = value.name

    # -- what a user's function sees --------------------------------------------------------------

    @cached_property
    def data(self) -> dict[str, np.ndarray]:
        """The model's data by name: every observed variable's values and every pm.Data."""
        values = {var.name: np.asarray(var.get_value()) for var in self.model.data_vars}
        for rv in self.model.observed_RVs:
            value = self.model.rvs_to_values[rv]
            values[rv.name] = np.asarray(value.get_value() if hasattr(value, "get_value")
                                         else value.data)
        return values

    def data_with(self, observed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The data dict with simulated observations in place of the observed values (under the
        observed variable's name and, if it was given as pm.Data, that name too).

        Parameters
        ----------
        observed : dict
            Values by observed variable's name; names not in it keep the model's data.

        Returns
        -------
        dict
            A new dict; `data` itself is not changed.
        """
        values = dict(self.data)
        for name, value in observed.items():
            values[name] = value
            if name in self._observed_data_name:
                values[self._observed_data_name[name]] = value
        return values

    @property
    def improper(self) -> tuple[str, ...]:
        """The names of the free variables with an improper prior (`Variable.improper`)."""
        return tuple(name for name, v in self.variables.items() if v.improper)

    # -- compiled functions ---------------------------------------------------------------------

    @cached_property
    def _evaluate(self):
        from pytensor.graph.replace import vectorize_graph

        model = self.model
        terms = joint_terms(model, jacobian=True)
        natural = model.replace_rvs_by_values(model.free_RVs)
        value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
        observed_values = [model.rvs_to_values[rv] for rv in model.observed_RVs]
        batched = {var: batched_like(var, var.name) for var in value_vars}
        batched |= {var: batched_like(var, f"{rv.name}_observed")
                    for rv, var in zip(model.observed_RVs, observed_values)}
        function = compile_batched(list(batched.values()),
                                   vectorize_graph([*terms.values(), *natural], replace=batched))
        return function, list(terms), len(terms)

    def evaluate(self, u: dict[str, np.ndarray], observed: dict[str, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Log density terms and natural values at K points.

        Parameters
        ----------
        u : dict
            Every free variable on the unconstrained scale, shape (K, *unconstrained_shape).
        observed : dict, optional
            Every observed variable, shape (K, *shape); default the model's data.

        Returns
        -------
        terms : numpy.ndarray
            (K, T): every term of the joint log density, -inf outside the support.
        natural : dict
            Every free variable on its natural scale, (K, *shape).
        """
        function, _, count = self._evaluate
        size = len(next(iter(u.values())))
        observed = observed or {name: np.broadcast_to(self.data[name],
                                                      (size, *np.shape(self.data[name])))
                                for name in self.observed}
        outputs = function(*(u[name] for name in self.variables),
                           *(observed[name] for name in self.observed))
        terms = np.concatenate([np.reshape(t, (size, -1)) for t in outputs[:count]], axis=1)
        terms[np.isnan(terms)] = -np.inf  # an invalid value is outside the support
        return terms, dict(zip(self.variables, outputs[count:]))

    @cached_property
    def term_owners(self) -> np.ndarray:
        """The variable, observed variable or potential each column of `evaluate`'s terms
        belongs to, by name.
        """
        function, owners, count = self._evaluate
        start = self.model.initial_point()
        value_names = [self.model.rvs_to_values[rv].name for rv in self.model.free_RVs]
        outputs = function(*(np.asarray(start[name])[None] for name in value_names),
                           *(np.asarray(self.data[name])[None] for name in self.observed))
        return np.concatenate([np.full(np.size(t), owner) for t, owner in
                               zip(outputs[:count], owners)])

    @cached_property
    def term_inputs(self) -> dict[str, frozenset[str]]:
        """The free variables among the inputs of each term of the joint log density (by the
        owner's name, as `term_owners` names the columns), read from the graph: a term that
        depends on a variable through a step (a change point, an indicator) is seen here where
        a small move of the variable changes nothing.
        """
        from pytensor.graph.traversal import ancestors

        model = self.model
        names = {model.rvs_to_values[rv]: rv.name for rv in model.free_RVs}
        return {owner: frozenset(names[node] for node in ancestors([term]) if node in names)
                for owner, term in joint_terms(self.model, jacobian=True).items()}

    def log_likelihood(self, u: dict[str, np.ndarray],
                       observed: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """log p(y | free variables) at K points (u as for `evaluate`): shape (K,).

        The sum of `evaluate`'s terms that belong to the observed variables.

        Parameters
        ----------
        u : dict
            Every free variable on the unconstrained scale, shape (K, *shape).
        observed : dict, optional
            Every observed variable, shape (K, *shape); default the model's data.

        Returns
        -------
        numpy.ndarray
            The log likelihood at each point, shape (K,).
        """
        terms, _ = self.evaluate(u, observed)
        return terms[:, np.isin(self.term_owners, self.observed)].sum(axis=1)

    @cached_property
    def _to_unconstrained(self):
        from pytensor.graph.replace import vectorize_graph

        model = self.model
        graphs = []
        for rv in model.free_RVs:
            transform = model.rvs_to_transforms.get(rv)
            graphs.append(rv if transform is None else transform.forward(rv, *rv.owner.inputs))
        inputs = {rv: batched_like(rv, rv.name) for rv in model.free_RVs}
        return compile_batched(list(inputs.values()), vectorize_graph(graphs, replace=inputs))

    def to_unconstrained(self, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """PyMC's forward transforms applied to natural values x (every variable, (K, *shape)).

        Parameters
        ----------
        x : dict
            Every free variable on its natural scale, shape (K, *shape).

        Returns
        -------
        dict
            Every free variable on the unconstrained scale u, shape (K, *unconstrained_shape);
            a variable without a transform as it is. A value outside the variable's support
            maps to NaN or to a point that `to_natural` does not map back to it (a non-symmetric
            matrix's log-Cholesky factor reads its lower triangle only).
        """
        outputs = self._to_unconstrained(*(np.asarray(x[name], dtype=self.model[name].dtype)
                                           for name in self.variables))
        return dict(zip(self.variables, outputs))

    @cached_property
    def _to_natural(self):
        from pytensor.graph.replace import vectorize_graph

        model = self.model
        natural = model.replace_rvs_by_values(model.free_RVs)
        inputs = {model.rvs_to_values[rv]: batched_like(model.rvs_to_values[rv], rv.name)
                  for rv in model.free_RVs}
        return compile_batched(list(inputs.values()), vectorize_graph(natural, replace=inputs))

    def to_natural(self, u: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """PyMC's backward transforms applied to unconstrained values u (every variable,
        (K, *unconstrained_shape)): the inverse of `to_unconstrained`.

        Parameters
        ----------
        u : dict
            Every free variable on the unconstrained scale, shape (K, *unconstrained_shape).

        Returns
        -------
        dict
            Every free variable on its natural scale, shape (K, *shape).
        """
        outputs = self._to_natural(*(np.asarray(u[name], dtype=self.model[name].dtype)
                                     for name in self.variables))
        return dict(zip(self.variables, outputs))

    @cached_property
    def _simulate_prior(self):
        import pytensor.tensor as pt
        from pymc.distributions.shape_utils import change_dist_size
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph.replace import vectorize_graph
        from pytensor.graph.traversal import ancestors

        model = self.model
        size = pt.iscalar("size")
        random = set(model.basic_RVs)
        roots = {rv: change_dist_size(rv, new_size=(size,), expand=True)
                 for rv in model.basic_RVs
                 if not (set(ancestors(rv.owner.inputs)) & random)}
        with _batch_axes_from_every_parameter():
            outputs = vectorize_graph(model.free_RVs + model.observed_RVs, replace=roots)
        with quiet_pytensor():
            return compile_pymc([size], outputs, random_seed=0)

    def simulate_prior(self, size: int, seed: SeedLike) -> tuple[dict, dict]:
        """`size` independent draws from the prior predictive: (free variables, observations),
        each a dict of arrays (size, *shape). The draws depend on `seed` alone.

        Parameters
        ----------
        size : int
            The number of draws.
        seed : int, SeedSequence or None
            Reseeds the function's random generators (None: fresh entropy).

        Returns
        -------
        free : dict
            Every free variable on its natural scale, (size, *shape).
        observed : dict
            Every observed variable, (size, *shape).
        """
        function = self._simulate_prior
        _reseed(function, seed)
        outputs = function(size)
        free = len(self.variables)
        return dict(zip(self.variables, outputs[:free])), dict(zip(self.observed, outputs[free:]))

    @cached_property
    def _simulate_observed(self):
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph.replace import vectorize_graph

        model = self.model
        inputs = {rv: batched_like(rv, rv.name) for rv in model.free_RVs}
        with _batch_axes_from_every_parameter():
            outputs = vectorize_graph(model.observed_RVs, replace=inputs)
        with quiet_pytensor():
            return compile_pymc(list(inputs.values()), outputs, random_seed=0,
                                on_unused_input="ignore")

    def simulate_observed(self, x: dict[str, np.ndarray],
                          seed: SeedLike = None) -> dict[str, np.ndarray]:
        """One draw of the observations given each of K points x (natural, (K, *shape)); a seed
        restarts the function's random stream, None continues it.

        Parameters
        ----------
        x : dict
            Every free variable on its natural scale, shape (K, *shape).
        seed : int, SeedSequence or None, optional
            Reseeds the function's random generators; None continues their stream.

        Returns
        -------
        dict
            Every observed variable, shape (K, *shape).
        """
        function = self._simulate_observed
        if seed is not None:
            _reseed(function, seed)
        outputs = function(*(np.asarray(x[name], dtype=self.model[name].dtype)
                             for name in self.variables))
        return dict(zip(self.observed, outputs))

    # -- NUTS ------------------------------------------------------------------------------------

    def sample_nuts(self, *, draws: int, tune: int, chains: int,
                    seed: int) -> tuple[dict[str, np.ndarray], int]:
        """PyMC's sampler on the model's data: every free variable's draws on the natural scale,
        (chains, draws, *shape), and the number of divergent transitions.

        Parameters
        ----------
        draws : int
            Kept draws per chain.
        tune : int
            Tuning steps per chain, discarded.
        chains : int
            Chains, run on at most two cores.
        seed : int
            `pymc.sample`'s random_seed.

        Returns
        -------
        draws : dict
            Every free variable's draws by name, (chains, draws, *shape).
        divergences : int
            The number of divergent transitions (0 if the sampler reports none).
        """
        import pymc as pm
        from threadpoolctl import threadpool_limits

        # one BLAS thread: the model's small linear algebra (a 4 x 4 triangular solve, say) is
        # microseconds on one thread and milliseconds when BLAS threads contend for two cores
        with quiet_pytensor(), warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", RuntimeWarning)
            trace = pm.sample(model=self.model, draws=draws, tune=tune, chains=chains,
                              cores=min(chains, 2), random_seed=seed, progressbar=False,
                              compute_convergence_checks=False, var_names=list(self.variables))
        draws_by_name = {name: trace.posterior[name].to_numpy() for name in self.variables}
        diverging = trace.sample_stats.get("diverging")
        return draws_by_name, int(diverging.sum()) if diverging is not None else 0


def batched_like(variable: TensorVariable, name: str) -> TensorVariable:
    """A tensor like `variable` with one more, leading, axis of any length.

    Parameters
    ----------
    variable : pytensor.tensor.TensorVariable
        The variable whose type (shape, dtype) the batch repeats.
    name : str
        The new tensor's name.

    Returns
    -------
    pytensor.tensor.TensorVariable
        A tensor of shape (None, *variable's shape).
    """
    import pytensor.tensor as pt

    return pt.tensor(name=name, shape=(None, *variable.type.shape), dtype=variable.type.dtype)


def compile_batched(inputs: list, outputs: list) -> Function:
    """A PyTensor function of graphs vectorized over a leading batch axis, their linear algebra
    batched by numpy (`batched_linear_algebra`), compiled quietly.

    PyTensor's (2.38) rewrite of log(det(X)) into slogdet asserts a single matrix and fails on
    the batched determinant of a Wishart's density, so it is left out.

    Parameters
    ----------
    inputs : list of pytensor.tensor.TensorVariable
        The function's arguments, in order; those the outputs do not read are accepted and
        ignored.
    outputs : list of pytensor.tensor.TensorVariable
        The graphs, vectorized over a leading batch axis.

    Returns
    -------
    pytensor.compile.function.types.Function
        The compiled function, returning one array per output.
    """
    import pytensor

    mode = pytensor.compile.mode.get_default_mode().excluding("slogdet_specialization")
    with quiet_pytensor():
        return pytensor.function(inputs, batched_linear_algebra(outputs),
                                 on_unused_input="ignore", mode=mode)


def batched_linear_algebra(outputs: list) -> list:
    """The graph of `outputs` with its batched small linear algebra done by numpy's batched
    routines; the same algebra, to rounding.

    Vectorizing the model over K points makes every Cholesky factor and solve a PyTensor
    `Blockwise` (2.38), which loops in Python over the batch: at 1000 points, a 3 x 3 factor or
    solve costs 50 to 100 us a point in scipy's per-call overhead. Two rewrites, applied before
    compiling:

    1. A multivariate normal's log density solves L z = y - m for each of n observations: (K, n)
       solves of one vector, though L is the same for the n observations of a point. They become
       K solves of L Z = (y_1 - m, ..., y_n - m), the vectors as columns (PyTensor's own
       `batched_vector_b_solve_to_matrix_b_solve` does this only for an L without batch axes).
    2. A batched lower Cholesky factor, lower triangular solve or general (symmetric, positive
       definite) solve is computed by numpy over all batch axes at once (`Blockwise`'s
       `gufunc_spec`): `_cholesky_lower`, `_solve_lower`, `_solve`, NaN where PyTensor's own
       would give NaN.

    Parameters
    ----------
    outputs : list of pytensor.tensor.TensorVariable
        The graphs, vectorized over a leading batch axis.

    Returns
    -------
    list of pytensor.tensor.TensorVariable
        The rewritten graphs, in the same order.
    """
    from pytensor.graph.rewriting.basic import in2out, node_rewriter
    from pytensor.graph.rewriting.utils import rewrite_graph
    from pytensor.tensor.blockwise import Blockwise

    rewrite = in2out(node_rewriter([Blockwise])(_solve_vectors_as_columns),
                     node_rewriter([Blockwise])(_numpy_batched))
    return rewrite_graph(outputs, include=(), custom_rewrite=rewrite)


def _solve_vectors_as_columns(fgraph, node):
    """Blockwise Solve(a, b, b_ndim=1) whose a (batch axes (..., 1, ..., 1)) is broadcast along
    b's trailing batch axes -> the transposed Solve(a, B, b_ndim=2), B those vectors as columns.
    """
    import pytensor.tensor as pt
    from pytensor.tensor.blockwise import Blockwise
    from pytensor.tensor.slinalg import SolveBase

    if not (isinstance(node.op.core_op, SolveBase) and node.op.core_op.b_ndim == 1):
        return None
    a, b = node.inputs
    batch = b.type.ndim - 1
    if a.type.ndim - 2 > batch:
        return None
    a = pt.shape_padleft(a, batch - (a.type.ndim - 2))
    shared = a.type.broadcastable[:-2]
    lead = batch
    while lead > 0 and shared[lead - 1]:
        lead -= 1
    if lead == batch:  # no axis along which a is shared
        return None
    n = b.shape[-1]
    columns = pt.swapaxes(b.reshape((*(b.shape[k] for k in range(lead)), -1, n)), -1, -2)
    props = node.op.core_op._props_dict() | {"b_ndim": 2}
    solved = Blockwise(type(node.op.core_op)(**props))(
        a.squeeze(axis=tuple(range(lead, batch))), columns)
    result = pt.swapaxes(solved, -1, -2).reshape(
        (*(solved.shape[k] for k in range(lead)), *(b.shape[k] for k in range(lead, batch)), n))
    return [pt.specify_broadcastable(result, *(
        k for k, flag in enumerate(node.outputs[0].type.broadcastable) if flag))]


def _numpy_batched(fgraph, node):
    """A Blockwise lower Cholesky, lower triangular solve (of matrices) or solve (of matrices)
    -> the same Blockwise computed by numpy's batched routines (`batched_linear_algebra`).
    """
    from pytensor.tensor.blockwise import Blockwise
    from pytensor.tensor.slinalg import Cholesky, Solve, SolveTriangular

    core, op = node.op.core_op, node.op
    if op.gufunc_spec is not None:
        return None
    if type(core) is Cholesky and core.lower:
        spec = (f"{__name__}._cholesky_lower", 1, 1)
    elif (type(core) is SolveTriangular and core.lower and not core.unit_diagonal
          and core.b_ndim == 2):
        spec = (f"{__name__}._solve_lower", 2, 1)
    elif type(core) is Solve and core.assume_a in ("gen", "sym", "pos") and core.b_ndim == 2:
        spec = (f"{__name__}._solve", 2, 1)
    else:
        return None
    return Blockwise(core, signature=op.signature, gufunc_spec=spec).make_node(
        *node.inputs).outputs


def _cholesky_lower(a: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of each matrix of a (..., p, p), from its lower triangle; NaN
    for a matrix that is not positive definite (as PyTensor's Cholesky).
    """
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        factors = np.full(a.shape, np.nan)
        for index in np.ndindex(a.shape[:-2]):
            try:
                factors[index] = np.linalg.cholesky(a[index])
            except np.linalg.LinAlgError:
                pass
        return factors


def _solve_lower(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with L x = b for each lower triangular L of a (..., p, p) and matrix of b (..., p, c),
    batch axes broadcast: forward substitution, one row at a time over every batch at once.
    """
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, (*shape, *a.shape[-2:]))
    b = np.broadcast_to(b, (*shape, *b.shape[-2:]))
    x = np.empty(b.shape, dtype=np.result_type(a, b, float))
    for i in range(a.shape[-1]):
        known = np.einsum("...k,...kc->...c", a[..., i, :i], x[..., :i, :])
        x[..., i, :] = (b[..., i, :] - known) / a[..., i, i, None]
    return x


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with A x = b for each matrix of a (..., p, p) and of b (..., p, c), batch axes
    broadcast, by LU; NaN for a singular A (as PyTensor's Solve).
    """
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, (*shape, *a.shape[-2:]))
        b = np.broadcast_to(b, (*shape, *b.shape[-2:]))
        x = np.full(b.shape, np.nan)
        for index in np.ndindex(shape):
            try:
                x[index] = np.linalg.solve(a[index], b[index])
            except np.linalg.LinAlgError:
                pass
        return x


@contextmanager
def _batch_axes_from_every_parameter():
    """Vectorize random variables by the batch axes of any parameter.

    PyTensor (2.38) extends a random variable's explicit size by the new batch axes of its first
    parameter only, so `pm.Normal("a", 0, tau=tau_a, shape=m)` with a batched tau_a fails to
    vectorize. While this context is open, the size grows by the most batch axes any parameter
    gained (their broadcast batch shape's leading axes); on leaving, PyTensor's rule is back.
    """
    from pytensor.graph.basic import equal_computations
    from pytensor.graph.replace import _vectorize_node
    from pytensor.tensor import concatenate
    from pytensor.tensor.random.op import RandomVariable
    from pytensor.tensor.random.utils import compute_batch_shape
    from pytensor.tensor.type_other import NoneTypeT

    original = _vectorize_node.dispatch(RandomVariable)

    def vectorize(op, node, rng, size, *parameters):
        old_size = op.size_param(node)
        if not isinstance(old_size.type, NoneTypeT) and equal_computations([old_size], [size]):
            added = max(new.type.ndim - old.type.ndim
                        for new, old in zip(parameters, op.dist_params(node)))
            if added > 0:
                batch = compute_batch_shape(parameters, ndims_params=op.ndims_params)
                size = concatenate([batch[:added], size])
        return op.make_node(rng, size, *parameters)

    _vectorize_node.register(RandomVariable, vectorize)
    try:
        yield
    finally:
        _vectorize_node.register(RandomVariable, original)


def _reseed(function, seed) -> None:
    """Point every random generator of a compiled function at a stream of `seed`, so that what it
    draws depends on the seed alone (not on earlier calls, nor on a forked worker's copy).
    """
    from pymc.pytensorf import reseed_rngs
    from pytensor.tensor.random.type import RandomGeneratorType

    if isinstance(seed, np.random.SeedSequence):
        seed = seed.generate_state(4)
    rngs = [v for v in function.get_shared() if isinstance(v.type, RandomGeneratorType)]
    reseed_rngs(rngs, seed)


@contextmanager
def quiet_pytensor() -> Iterator[None]:
    """PyMC's INFO chatter and PyTensor's rewrite tracebacks (a skipped fusion costs speed, not
    correctness) off while compiling and sampling.

    Yields
    ------
    None
        Inside the block the loggers are silent and BLAS link warnings ignored; their levels
        are restored after it.
    """
    loggers = [logging.getLogger(name) for name in ("pymc", "pytensor.graph.rewriting.basic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
