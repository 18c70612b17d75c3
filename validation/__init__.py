"""Evidence that hand-derived inference is right: the checks, the mutants they must catch, and the
`hiercheck` command. `check_sampler`, `detection_matrix` and `Verdict` (from
`hiercheck.validation.suite`) load on first use, so the command starts without importing the
numerical stack.
"""

_SUITE = ("check_sampler", "detection_matrix", "Verdict")

__all__ = list(_SUITE)


def __getattr__(name: str) -> object:
    if name in _SUITE:
        from . import suite
        return getattr(suite, name)
    raise AttributeError(f"module 'hiercheck.validation' has no attribute {name!r}")
