# SPDX-License-Identifier: BSD-3-Clause
"""One training call at a time per model: a loud error instead of a silent race.

``fit``, ``partial_fit`` and :class:`crnn.OnlineRTRL` change a model's
weights (and an online trainer's state) in place, in numpy and in compiled
kernels that run without the GIL. Two such calls on one model from two
threads would interleave their updates and leave numbers that no serial
order gives. :func:`exclusive` makes the second call raise ``RuntimeError``
at once instead; it costs one lock acquisition per call, and nothing is
stored on the model (which stays picklable).
"""

import contextlib
import threading

__all__ = ["exclusive"]

_lock = threading.Lock()
_holders = {}  # id(object) -> a description of the call that holds it


@contextlib.contextmanager
def exclusive(what, *objects):
    """Hold `objects` (models, trainers) for the duration of the call `what`.

    Raises
    ------
    RuntimeError
        If another call, in any thread, holds one of them.
    """
    keys = [id(obj) for obj in objects]
    holder = f"{what} in thread {threading.current_thread().name!r}"
    with _lock:
        for key, obj in zip(keys, objects, strict=True):
            if key in _holders:
                raise RuntimeError(
                    f"{what}: this {type(obj).__name__} is being changed by {_holders[key]}; "
                    "one model (or online trainer) cannot be trained by two calls at once. "
                    "Give each thread its own model (copy.deepcopy), or wait for the other call."
                )
        for key in keys:
            _holders[key] = holder
    try:
        yield
    finally:
        with _lock:
            for key in keys:
                _holders.pop(key, None)


def check_writable(model, what):
    """Refuse to train a model whose weights were made read-only (they are updated in place)."""
    for name, arr in model.parameters().items():
        if not arr.flags.writeable:
            raise ValueError(
                f"{name} is read-only, but {what} updates the weights in place; assign a "
                f"writable copy first (model.{name} = model.{name}.copy())"
            )
