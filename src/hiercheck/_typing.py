"""Type aliases of the public API."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

__all__ = ["SeedLike"]

SeedLike: TypeAlias = int | np.random.SeedSequence | np.random.Generator | None
"""Anything `numpy.random.default_rng` accepts: the one seed a result depends on."""
