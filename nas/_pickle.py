"""Reading pickles that `nas` did not write, without ever running code from them.

Why: benchmark files (NAS-Bench-201, HW-NAS-Bench) and dataset batches (CIFAR's python version) are
pickles from downloads, and `pickle.load` calls whatever callable a file names (`os.system`, ...). Both
unpicklers here resolve only a whitelist of inert globals; everything else is refused before it runs.
"""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except a few inert builtin types.

    The benchmark files only hold dicts, lists, strings and numbers, which the pickle protocol encodes
    without globals, so this whitelist costs nothing on legitimate files.
    """

    _ALLOWED = frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes", "bool"})

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles written by Python 2 name the builtins module `__builtin__`.
        if module in ("builtins", "__builtin__") and name in self._ALLOWED:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only plain data is allowed")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to rebuild an array of type {subtype!r}: only numpy.ndarray is allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec, *args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing to unpickle an array of dtype {dtype}: arrays of Python objects can hold code")
    return dtype


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes `bytes` into protocol-2 pickles as _codecs.encode(text, "latin1").
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}: only latin1 is allowed")
    return text.encode("latin1")


class ArrayUnpickler(RestrictedUnpickler):
    """`RestrictedUnpickler` plus numpy arrays of plain numbers (CIFAR's python batches hold those).

    Admitted: `numpy.ndarray` rebuilt as a plain ndarray, dtypes that hold no Python objects, and the
    latin-1 `_codecs.encode` Python 3 uses for bytes in protocol-2 pickles.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _reconstruct
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return _dtype
        if module == "_codecs" and name == "encode":
            return _latin1
        return super().find_class(module, name)


def _no_objects(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        raise pickle.UnpicklingError("refusing an array of Python objects")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_objects(k)
            _no_objects(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _no_objects(v)
    return value


def safe_load_pickle(path: str | Path, *, arrays: bool = False, encoding: str = "ASCII") -> Any:
    """Unpickles `path` with `RestrictedUnpickler` (plain data only, never code), or with
    `ArrayUnpickler` when `arrays` (numeric numpy arrays too). `encoding="bytes"` reads Python 2 pickles.

    Raises:
        FileNotFoundError: `path` does not exist.
        pickle.UnpicklingError: the file references a global outside the whitelist.
    """
    with open(path, "rb") as f:
        return load_pickle(f, arrays=arrays, encoding=encoding)


def load_pickle(stream: BinaryIO, *, arrays: bool = False, encoding: str = "ASCII") -> Any:
    """`safe_load_pickle` of an open binary stream."""
    unpickler = (ArrayUnpickler if arrays else RestrictedUnpickler)(stream, encoding=encoding)
    return _no_objects(unpickler.load())


__all__ = ["ArrayUnpickler", "RestrictedUnpickler", "load_pickle", "safe_load_pickle"]
