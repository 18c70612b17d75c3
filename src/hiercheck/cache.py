"""A disk cache of expensive references, keyed by a content hash of everything they depend on.

The exact posterior, the NUTS reference posterior and compiled PyMC functions take seconds to
minutes and depend only on their inputs (the data, the priors, the settings, the seed, and the
versions of the packages that compute them). An entry is stored under the SHA-256 of those inputs,
written to a temporary name and renamed into place (atomic), beside a manifest holding the inputs
and the SHA-256 of the stored bytes. On reading, the manifest must name the same inputs and the
bytes must hash to the recorded value; anything else (a truncated file, a manifest from another
run, bytes that do not load) is recomputed and overwritten, never trusted.

The folder is `$HIERCHECK_CACHE` when set, else the user's cache folder (platformdirs);
`hiercheck cache clear` empties it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from hiercheck.errors import HiercheckWarning

if TYPE_CHECKING:
    from hiercheck.models import GroupedData

__all__ = ["CACHE_ENV", "Codec", "DiskCache", "PICKLE", "cache_folder", "data_parts",
           "fingerprint", "source_digest"]

CACHE_ENV = "HIERCHECK_CACHE"
# The packages whose versions change what a reference computes: a new version is a new key.
VERSIONED = ("hiercheck", "numpy", "scipy", "pymc", "pytensor", "arviz", "xarray", "nutpie",
             "statsmodels")

T = TypeVar("T")


def cache_folder() -> Path:
    """The cache's folder: `$HIERCHECK_CACHE`, else the user cache folder of the platform.

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("hiercheck"))


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _canonical(value: Any) -> Any:
    """A JSON-serializable form of a key part in which equal inputs give equal text: arrays by
    dtype, shape and the SHA-256 of their bytes, mappings with sorted keys.
    """
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        if array.dtype == object:
            array = array.astype(str)
        return {"dtype": array.dtype.str, "shape": list(array.shape),
                "sha256": hashlib.sha256(array.tobytes()).hexdigest()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.random.SeedSequence):
        return {"entropy": str(value.entropy), "spawn_key": list(value.spawn_key)}
    raise TypeError(f"cannot key a cache entry on a {type(value).__name__}")


def fingerprint(parts: dict) -> tuple[str, dict]:
    """The key of a cache entry: the SHA-256 of the canonical form of `parts` and the versions
    of the packages in `VERSIONED`.

    Parameters
    ----------
    parts : dict
        Everything the entry depends on (arrays, numbers, strings, nested mappings and lists).

    Returns
    -------
    key : str
        The hexadecimal SHA-256.
    canonical : dict
        The canonical form that was hashed, kept in the entry's manifest.
    """
    canonical = {"parts": _canonical(parts), "versions": _package_versions()}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest(), canonical


@dataclass(frozen=True)
class Codec:
    """How a kind of value is written to and read from one file.

    Parameters
    ----------
    suffix : str
        The file name's suffix.
    write : callable
        `write(value, path)`.
    read : callable
        `read(path) -> value`, fully in memory (the file may be replaced afterwards).
    """

    suffix: str
    write: Callable[[Any, Path], None]
    read: Callable[[Path], Any]


def _write_pickle(value: Any, path: Path) -> None:
    with path.open("wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _read_pickle(path: Path) -> Any:
    with path.open("rb") as handle:
        return pickle.load(handle)


# Posteriors (ArviZ InferenceData) are pickled too: read back in milliseconds where netCDF took
# a third of a second each, a tenth of a warm `hiercheck validate`. A pickle from other versions
# of the packages that wrote it is under another key (VERSIONED), or fails to load and is
# recomputed.
PICKLE = Codec(".pkl", _write_pickle, _read_pickle)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_parts(data: GroupedData) -> dict:
    """What a grouped data set is, as parts of a cache key: its group labels, each value's
    group code and the values.

    Parameters
    ----------
    data : hiercheck.models.GroupedData
        The data.

    Returns
    -------
    dict
        {"labels", "codes", "values"}.
    """
    return {"labels": data.labels, "codes": data.codes, "values": data.values}


def source_digest(*modules: str) -> str:
    """The SHA-256 of the source files of `modules`, found without importing them (a module
    that imports PyMC is not imported to key an entry that spares importing PyMC): a key part
    for an entry computed by code that changes between releases of the same version.

    Parameters
    ----------
    *modules : str
        Dotted module names.

    Returns
    -------
    str
        The hexadecimal SHA-256 of the files' bytes, in the order given.
    """
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(importlib.util.find_spec(module).origin).read_bytes())
    return digest.hexdigest()


class DiskCache:
    """Values computed once and read back by later runs, in `folder` (default `cache_folder()`).

    Parameters
    ----------
    folder : path-like, optional
        Where entries live; one subfolder per kind of value.
    enabled : bool, default True
        When False, every value is computed and nothing is read or written.
    """

    def __init__(self, folder: str | os.PathLike | None = None, *, enabled: bool = True):
        self.folder = Path(folder) if folder is not None else cache_folder()
        self.enabled = enabled

    def get(self, kind: str, parts: dict, compute: Callable[[], T], codec: Codec) -> T:
        """The value of `compute()` for these inputs: read from the cache when a sound entry
        exists, else computed, stored and returned.

        Parameters
        ----------
        kind : str
            The kind of value ("exact", "nuts", "logp", ...): a subfolder.
        parts : dict
            Everything the value depends on; see `fingerprint`.
        compute : callable
            Computes the value.
        codec : Codec
            How to store it.

        Returns
        -------
        object
            The value.
        """
        if not self.enabled:
            return compute()
        key, canonical = fingerprint(parts)
        payload = self.folder / kind / f"{key}{codec.suffix}"
        manifest = payload.with_suffix(".json")
        if payload.exists() or manifest.exists():
            try:
                return self._read(payload, manifest, canonical, codec)
            except Exception as error:  # any fault of the entry: recompute, never trust it
                warnings.warn(f"cache entry {payload.name} ({kind}) is unusable ({error}); "
                              "recomputing it", HiercheckWarning, stacklevel=2)
        value = compute()
        self._write(value, payload, manifest, canonical, codec)
        return value

    @staticmethod
    def _read(payload: Path, manifest: Path, canonical: dict, codec: Codec):
        recorded = json.loads(manifest.read_text())
        if recorded.get("inputs") != canonical:
            raise ValueError("its manifest names other inputs")
        if _sha256_of(payload) != recorded.get("sha256"):
            raise ValueError("its bytes do not match the recorded checksum")
        return codec.read(payload)

    @staticmethod
    def _write(value, payload: Path, manifest: Path, canonical: dict, codec: Codec) -> None:
        payload.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=payload.parent, prefix=".tmp-",
                                             suffix=codec.suffix)
        os.close(handle)
        temporary = Path(temporary)
        try:
            codec.write(value, temporary)
            record = {"inputs": canonical, "sha256": _sha256_of(temporary)}
            os.replace(temporary, payload)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        # the manifest goes last: a run killed in between leaves an entry whose check fails
        _replace_text(manifest, json.dumps(record, indent=1))

    def clear(self) -> int:
        """Delete every entry.

        Returns
        -------
        int
            The number of files deleted.
        """
        if not self.folder.is_dir():
            return 0
        count = sum(1 for path in self.folder.rglob("*") if path.is_file())
        shutil.rmtree(self.folder)
        return count

    def size(self) -> tuple[int, int]:
        """The number of entries and their bytes.

        Returns
        -------
        entries : int
            Stored values (manifests not counted).
        size : int
            Bytes on disk, manifests included.
        """
        if not self.folder.is_dir():
            return 0, 0
        files = [path for path in self.folder.rglob("*") if path.is_file()]
        entries = sum(1 for path in files if path.suffix != ".json")
        return entries, sum(path.stat().st_size for path in files)


def _replace_text(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)
