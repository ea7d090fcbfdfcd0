"""Run one measurement job in a fresh Python process and collect its result.

Why fresh processes: on a shared machine one process can land in a slow state for its whole life (page
placement, a noisy neighbour, a code path selected once), so latencies agree within 1-2 % inside a process
but differ by 5-10 % across processes. Measuring in several new processes, one after the other, and taking
the median of their medians is the cheapest defence. Processes run sequentially, never in parallel, so
they do not compete for the cores they are timing.

Why `python -m` and not `multiprocessing`: a spawned multiprocessing child re-imports the caller's main
script, which breaks any user script without an `if __name__ == "__main__"` guard. Here the child is a
clean interpreter that imports only the job's module; the job and its arguments travel as a pickle on
stdin, and progress and the result come back as length-prefixed pickles on a dedicated pipe.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

Tick = Callable[[int], None]
_HEADER = struct.Struct("<Q")


class MeasurementError(RuntimeError):
    """A measurement process failed; the message carries the child's error."""


class MeasurementInputError(ValueError):
    """A measurement process rejected its input (the child raised a ValueError or KeyError)."""


def _send(stream: BinaryIO, message: tuple[str, Any]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> tuple[str, Any] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def run_fresh(target: Callable[..., Any], args: tuple[Any, ...], *, on_tick: Tick | None = None) -> Any:
    """`target(*args, tick=...)` in a new Python process; arguments and return value must pickle.

    `target` must be a top-level function of an importable module; it calls `tick(n)` to report progress,
    forwarded to `on_tick`.
    """
    read_fd, write_fd = os.pipe()
    package_root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "nas.cost.measure._fresh", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as channel:
            assert process.stdin is not None
            try:
                process.stdin.write(pickle.dumps((target.__module__, target.__qualname__, args), protocol=pickle.HIGHEST_PROTOCOL))
                process.stdin.close()
            except BrokenPipeError:
                pass
            result: tuple[str, Any] | None = None
            while (message := _receive(channel)) is not None:
                kind, payload = message
                if kind == "tick":
                    if on_tick is not None:
                        on_tick(int(payload))
                else:
                    result = message
                    break
        process.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace").strip()
    if result is None:
        tail = stderr.splitlines()[-1] if stderr else "no error output"
        raise MeasurementError(f"measurement process exited with code {process.returncode} before reporting a result: {tail}")
    kind, payload = result
    if kind == "result":
        return payload
    if kind == "input-error":
        raise MeasurementInputError(str(payload))
    raise MeasurementError(f"measurement process failed: {payload}")


def _main(fd: int) -> None:
    with os.fdopen(fd, "wb") as channel:
        try:
            module, qualname, args = pickle.loads(sys.stdin.buffer.read())
            target = importlib.import_module(module)
            for part in qualname.split("."):
                target = getattr(target, part)
            result = target(*args, tick=lambda n=1: _send(channel, ("tick", n)))
            _send(channel, ("result", result))
        except KeyError as exc:
            _send(channel, ("input-error", exc.args[0] if exc.args else repr(exc)))
        except ValueError as exc:
            _send(channel, ("input-error", str(exc)))
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as text
            _send(channel, ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


if __name__ == "__main__":
    _main(int(sys.argv[1]))
