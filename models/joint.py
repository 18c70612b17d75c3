"""Every term of a PyMC model's joint log density, by name: what both harnesses evaluate.

    log p(x, y) = sum_k log p(x_k | .) + sum_l log p(y_l | .) + sum_r phi_r(x)

over the free variables x_k, the observed variables y_l and the potentials phi_r (`pm.Potential`,
which carry an improper prior such as Jeffreys' -log lam, or any other factor of the density). A
reference built from the random variables alone (`model.basic_RVs`) leaves the potentials out and
is another density: under the course's priors its lam conditional lacked the factor 1/lam.
"""

from __future__ import annotations

__all__ = ["joint_terms"]

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pymc as pm
    from pytensor.tensor import TensorVariable


def joint_terms(model: pm.Model, jacobian: bool = True) -> dict[str, TensorVariable]:
    """The terms of log p(x, y), unsummed: each free variable's and each observed variable's
    log density elementwise, then each potential, keyed by name in that order.

    Their total is `model.logp(jacobian=jacobian)`, the density that `model.compile_logp`
    compiles; tests/test_joint_terms.py checks it on every built-in model.

    Parameters
    ----------
    model : pymc.Model
        The model.
    jacobian : bool, default True
        Whether the free variables' terms carry the Jacobian of their transforms (the density
        on PyMC's unconstrained scale), as in `pymc.Model.logp`.

    Returns
    -------
    dict of str to pytensor.tensor.TensorVariable
        The graphs in the model's value variables: a free or observed variable's of its shape,
        a potential's of its own.
    """
    owners = [*model.free_RVs, *model.observed_RVs, *model.potentials]
    terms = model.logp(vars=owners, jacobian=jacobian, sum=False)
    return {owner.name: term for owner, term in zip(owners, terms)}
