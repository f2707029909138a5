# SPDX-License-Identifier: BSD-3-Clause
"""One training call at a time per model: a loud error instead of a silent race.

``fit``, ``partial_fit`` and :class:`crnn.OnlineRTRL` change a model's
weights (and an online trainer's state) in place, in numpy and in compiled
kernels that run without the GIL. Two such calls on one model from two
threads would interleave their updates and leave numbers that no serial
order gives. :func:`exclusive` makes the second call raise ``RuntimeError``
at once instead; it costs one lock acquisition per call, and nothing is
stored on the model (which stays picklable).

A forked child has only the thread that forked: the marks of the calls of
the other threads (which never end there) are dropped in the child.

:func:`uninterrupted` makes a few in-place writes (one optimizer update)
whole with respect to Ctrl-C: a KeyboardInterrupt waits until they are done.
"""

import contextlib
import os
import signal
import threading

__all__ = ["exclusive", "uninterrupted"]

_lock = threading.Lock()
_holders = {}  # id(object) -> (a description of the call that holds it, its thread's ident)


def _after_fork_in_child():
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    me = threading.get_ident()
    for key, (_, ident) in list(_holders.items()):
        if ident != me:
            del _holders[key]


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def exclusive(what, *objects):
    """Hold `objects` (models, trainers) for the duration of the call `what`.

    Raises
    ------
    RuntimeError
        If another call, in any thread, holds one of them.
    """
    keys = [id(obj) for obj in objects]
    holder = (f"{what} in thread {threading.current_thread().name!r}", threading.get_ident())
    with _lock:
        for key, obj in zip(keys, objects, strict=True):
            if key in _holders:
                raise RuntimeError(
                    f"{what}: this {type(obj).__name__} is being changed by {_holders[key][0]}; "
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


@contextlib.contextmanager
def uninterrupted():
    """Run the block whole: a SIGINT that comes during it is handled after it.

    Python runs signal handlers between any two bytecodes of the main
    thread, so a Ctrl-C could otherwise stop an update with some arrays
    written and others not. In the main thread, while the SIGINT handler is
    a Python function, it is replaced for the block by one that notes the
    signal; the block's end puts it back and calls it if a signal came.
    Elsewhere (other threads never run handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        if caught:
            handler(signal.SIGINT, caught[0])


def check_writable(model, what):
    """Refuse to train a model whose weights were made read-only (they are updated in place)."""
    for name, arr in model.parameters().items():
        if not arr.flags.writeable:
            raise ValueError(
                f"{name} is read-only, but {what} updates the weights in place; assign a "
                f"writable copy first (model.{name} = model.{name}.copy())"
            )
