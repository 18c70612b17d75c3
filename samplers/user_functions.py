"""What a user's function returns, checked before anything uses it.

A draw function `draw_x(rng, state, stats, priors)` must return x for every cell of the batch it
was given: real numbers, of the state's batch shape (for theta the batch shape and then one value
per school), finite, and positive when x is a precision (lam, omega). A marginal likelihood
`f(stats, mu, lam, omega)` must return one finite real number. Anything else raises
`UserFunctionError` naming the function and what was wrong; unchecked, a scalar where m values
belong would be broadcast and tested as if it were draws. So does an exception raised inside the
user's function: it is the user's to fix, not an internal error of the package.

Integers are real numbers and are accepted (as floats); booleans, complex numbers and objects
(None among them) are not. The package's own conditionals are not wrapped: the checks are for
functions the package did not write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from hiercheck.errors import UserFunctionError

if TYPE_CHECKING:
    from .gibbs import Conditionals

__all__ = ["checked", "checked_conditionals", "checked_log_likelihood"]

PRECISIONS = ("lam", "omega")
REAL_KINDS = "fiu"  # numpy dtype kinds: floating, signed and unsigned integer


def _name(function: Callable) -> str:
    return getattr(function, "__name__", None) or repr(function)


def _real_array(value, who: str, expected: str) -> np.ndarray:
    """`value` as a float array, or a UserFunctionError unless it holds real numbers."""
    if value is None:
        raise UserFunctionError(f"{who} returned None, expected {expected}")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # e.g. a ragged list
        raise UserFunctionError(f"{who} returned a {type(value).__name__} that is not an array "
                                f"of numbers, expected {expected}") from None
    if array.dtype.kind not in REAL_KINDS:
        raise UserFunctionError(f"{who} returned dtype {array.dtype}, expected real numbers "
                                f"(float or integer)")
    return array.astype(float, copy=False)


def _require_finite(array: np.ndarray, who: str, where: str = "") -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        what = ("NaN" if np.isnan(array).any() else
                "infinity" if np.isposinf(array).any() else "-infinity")
        count = f" ({bad.sum()} of {array.size} values)" if array.size > 1 else ""
        raise UserFunctionError(f"{who} returned {what}{count}{where}")


def _called(function: Callable, who: str, *arguments):
    """function(*arguments); an exception inside it as a UserFunctionError naming `who`."""
    try:
        return function(*arguments)
    except UserFunctionError:
        raise
    except Exception as error:  # the user's code: never reported as an internal error
        raise UserFunctionError(f"{who} raised {type(error).__name__}: {error}") from error


def check_draw(field: str, function: Callable, value, state, stats) -> np.ndarray:
    """`value`, returned by `function` in the place of `field` (e.g. "draw_omega"), as a float
    array of the expected shape; a UserFunctionError naming both when it cannot be draws.

    The expected shape is the batch shape of the state and the statistics (for theta followed by
    the m schools); the variable is the word after "draw_" (so "draw_lam_collapsed" draws lam).
    """
    variable = field.split("_")[1]
    batch = np.broadcast_shapes(np.shape(state.theta)[:-1], np.shape(state.mu),
                                np.shape(state.lam), np.shape(state.omega),
                                np.shape(stats.ybar)[:-1])
    if variable == "theta":
        shape, meaning = batch + (stats.m,), "one value per chain and school"
    else:
        shape, meaning = batch, "one value per chain"
    who = f"{field} ({_name(function)})"
    array = _real_array(value, who, f"shape {shape} ({meaning})")
    if array.shape != shape:
        raise UserFunctionError(f"{who} returned shape {array.shape}, expected {shape} "
                                f"({meaning})")
    _require_finite(array, who)
    if variable in PRECISIONS and not np.all(array > 0):
        raise UserFunctionError(f"{who} returned a non-positive precision {variable} "
                                f"(smallest value {array.min():.3g})")
    return array


def checked(field: str, function: Callable) -> Callable:
    """`function`, a draw function in the place of `field`, with every value it returns checked
    by `check_draw`.

    Parameters
    ----------
    field : str
        The field of `Conditionals` it fills, e.g. "draw_omega"; names it in messages and says
        which variable it draws.
    function : callable
        `function(rng, state, stats, priors)`.

    Returns
    -------
    callable
        The same signature; returns the checked float array.
    """
    who = f"{field} ({_name(function)})"

    @functools.wraps(function)
    def draw(rng, state, stats, priors):
        value = _called(function, who, rng, state, stats, priors)
        return check_draw(field, function, value, state, stats)
    return draw


def checked_conditionals(conditionals: Conditionals) -> Conditionals:
    """`conditionals` (a `Conditionals`) with every function that is not its field's default, the
    package's own, wrapped in `checked`; the same object when there is none.

    Parameters
    ----------
    conditionals : Conditionals
        The draw functions of a Gibbs sweep (`hiercheck.samplers.gibbs.Conditionals`).

    Returns
    -------
    Conditionals
        The same fields, each user's function wrapped in `checked`.
    """
    defaults = type(conditionals)._field_defaults
    replaced = {field: checked(field, function)
                for field, function in conditionals._asdict().items()
                if function is not defaults.get(field)}
    return conditionals._replace(**replaced) if replaced else conditionals


def checked_log_likelihood(function: Callable, role: str = "log_marginal_likelihood",
                           point: tuple[str, ...] = ("mu", "lam", "omega")) -> Callable:
    """`function(stats, *values)`, a log-likelihood at the point `values` (named `point`),
    returning a float, with a UserFunctionError naming it (and the point) unless it returned one
    finite real number.

    Parameters
    ----------
    function : callable
        `function(stats, mu, lam, omega) -> log p(y | mu, lam, omega)`, or with another `point`
        (`("lam", "omega")` for a restricted likelihood).
    role : str, default "log_marginal_likelihood"
        What the function is, for the message.
    point : tuple of str, default ("mu", "lam", "omega")
        The names of the arguments after `stats`, for the message.

    Returns
    -------
    callable
        The same signature, returning a float.
    """
    who = f"{role} ({_name(function)})"

    @functools.wraps(function)
    def log_likelihood(stats, *values) -> float:
        array = _real_array(_called(function, who, stats, *values), who, "a single number")
        if array.shape != ():
            raise UserFunctionError(f"{who} returned shape {array.shape}, expected a single "
                                    f"number (shape ())")
        _require_finite(array, who, " at " + ", ".join(
            f"{name}={float(value):.6g}" for name, value in zip(point, values)))
        return float(array)
    return log_likelihood
