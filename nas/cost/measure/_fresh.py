"""Run one measurement job in a fresh Python process and collect its result.

Why fresh processes: on a shared machine one process can land in a slow state for its whole life (page
placement, a noisy neighbour, a code path JIT-selected once), so latencies agree within 1-2 % inside a
process but differ by 5-10 % across processes. Measuring in several new processes, one after the other,
and taking the median of their medians is the cheapest defence. Processes run sequentially, never in
parallel, so they do not compete for the cores they are timing.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import traceback
from collections.abc import Callable
from typing import Any

Tick = Callable[[int], None]


class MeasurementError(RuntimeError):
    """A measurement process failed; the message carries the child's error."""


class MeasurementInputError(ValueError):
    """A measurement process rejected its input (the child raised a ValueError/KeyError)."""


def _child(channel: Any, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    def tick(n: int = 1) -> None:
        channel.put(("tick", n))

    try:
        channel.put(("result", target(*args, tick=tick)))
    except (ValueError, KeyError, LookupError) as exc:
        channel.put(("input-error", f"{exc}" if not isinstance(exc, KeyError) else str(exc.args[0]) if exc.args else repr(exc)))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as text
        channel.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run_fresh(target: Callable[..., Any], args: tuple[Any, ...], *, on_tick: Tick | None = None) -> Any:
    """`target(*args, tick=...)` in a new spawned process; its return value must pickle.

    `target` must be importable by module path (a top-level function) and calls `tick(n)` to report
    progress, forwarded to `on_tick`.
    """
    ctx = mp.get_context("spawn")
    channel = ctx.Queue()
    process = ctx.Process(target=_child, args=(channel, target, args), daemon=True)
    process.start()
    try:
        while True:
            try:
                kind, payload = channel.get(timeout=0.5)
            except queue_module.Empty:
                if not process.is_alive():
                    try:  # a result put just before exit may still be in flight
                        kind, payload = channel.get(timeout=1.0)
                    except queue_module.Empty:
                        raise MeasurementError(f"measurement process exited with code {process.exitcode} before reporting a result") from None
                else:
                    continue
            if kind == "tick":
                if on_tick is not None:
                    on_tick(int(payload))
            elif kind == "result":
                return payload
            elif kind == "input-error":
                raise MeasurementInputError(str(payload))
            else:
                raise MeasurementError(f"measurement process failed: {payload}")
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
        channel.close()
