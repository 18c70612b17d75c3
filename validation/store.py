"""Results saved as they come, so a long run that is killed resumes where it stopped.

A run folder holds `config.json` (what the run computes) and one `unit-<k>.npz` per finished unit
of work. Each unit is written to a temporary name and renamed into place, which is atomic, so a
run killed at any moment leaves only whole units behind; a re-run with the same configuration
loads them and computes the rest.
"""

from __future__ import annotations

__all__ = ["UnitStore"]

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from hiercheck.errors import StoreMismatchError


class UnitStore:
    """A run folder: its configuration, and the units of work finished so far.

    Opening a folder that holds no run starts one (writes `config.json`); opening one that holds
    a run with the same configuration resumes it.

    Parameters
    ----------
    folder : str or pathlib.Path
        The run folder; created if missing.
    config : dict
        What the run computes (every setting its results depend on), JSON-serializable (other
        values are stored as their str).

    Attributes
    ----------
    folder : pathlib.Path
        The run folder.
    config : dict
        The configuration as stored in `config.json`.

    Raises
    ------
    StoreMismatchError
        If the folder holds a run with another configuration.
    """

    def __init__(self, folder: Path | str, config: dict) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = json.loads(json.dumps(config, default=str))
        path = self.folder / "config.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved != self.config:
                changed = sorted(k for k in set(saved) | set(self.config)
                                 if saved.get(k) != self.config.get(k))
                raise StoreMismatchError(
                    f"{self.folder} holds a run with other settings ({', '.join(changed)}); "
                    "use another --out folder or delete it")
        else:
            _write_atomically(path, lambda handle: handle.write(json.dumps(self.config, indent=1).encode()))

    def _path(self, unit: int) -> Path:
        return self.folder / f"unit-{unit:06d}.npz"

    def done(self) -> set[int]:
        """The units finished so far.

        Returns
        -------
        set[int]
            The numbers of the units saved in the folder.
        """
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("unit-*.npz")}

    def save(self, unit: int, arrays: dict[str, np.ndarray]) -> None:
        """Save a finished unit, atomically: a run killed meanwhile leaves it whole or absent.

        Parameters
        ----------
        unit : int
            The unit's number.
        arrays : dict[str, np.ndarray]
            Its results by name.
        """
        _write_atomically(self._path(unit), lambda handle: np.savez(handle, **arrays))

    def load(self, unit: int) -> dict[str, np.ndarray]:
        """The results of a finished unit, as `save` was given them.

        Parameters
        ----------
        unit : int
            The unit's number; one of `done()`.

        Returns
        -------
        dict[str, np.ndarray]
            Its results by name.
        """
        with np.load(self._path(unit)) as saved:
            return {name: saved[name] for name in saved.files}


def _write_atomically(path: Path, write) -> None:
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
