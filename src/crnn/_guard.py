# SPDX-License-Identifier: BSD-3-Clause
"""One training call at a time per model: a loud error instead of a silent race.

``fit``, ``partial_fit`` and :class:`crnn.OnlineRTRL` change a model's
weights (and an online trainer's state) in place, in numpy and in compiled
kernels that run without the GIL. Two such calls on one model from two
threads would interleave their updates and leave numbers that no serial
order gives. :func:`exclusive` makes the second call raise ``RuntimeError``
at once instead; it costs a dict update per object held (each one atomic,
so no lock), and nothing is stored on the model (which stays picklable).

A forked child has only the thread that forked: the marks of the calls of
the other threads (which never end there) are dropped in the child.

:func:`uninterrupted` makes a few in-place writes (one optimizer update)
whole with respect to Ctrl-C: a KeyboardInterrupt waits until they are done;
:func:`interrupts_deferrable` makes that cheap for a loop of updates.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

    from crnn._typing import Self, Trainable

    _Handler = Callable[[int, FrameType | None], object]

__all__ = ["deferral_is_cheap", "exclusive", "interrupts_deferrable", "uninterrupted"]

# id(object) -> (the call that holds it, its thread's ident)
_holders: dict[int, tuple[str, int]] = {}


def _after_fork_in_child() -> None:
    me = threading.get_ident()
    for key, (_, ident) in list(_holders.items()):
        if ident != me:
            del _holders[key]


def _thread_name(ident: int) -> str:
    """Return the name of the running thread `ident` (for a message)."""
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"<thread {ident}>"


os.register_at_fork(after_in_child=_after_fork_in_child)


class exclusive:  # lower case: used as a function, ``with exclusive(...):``
    """Hold `objects` (models, trainers) for the duration of the call `what`.

    A context manager (a class rather than a generator: it is entered at
    every online step, where a generator's machinery costs microseconds).

    Raises
    ------
    RuntimeError
        If another call, in any thread, holds one of them.
    """

    __slots__ = ("objects", "what")

    def __init__(self, what: str, *objects: object) -> None:
        self.what = what
        self.objects = objects

    def __enter__(self) -> Self:
        holder = (self.what, threading.get_ident())
        for held, obj in enumerate(self.objects):
            # setdefault is one atomic step: of two threads, one finds the other's mark
            other = _holders.setdefault(id(obj), holder)
            if other is not holder:
                for mine in self.objects[:held]:
                    del _holders[id(mine)]
                raise RuntimeError(
                    f"{self.what}: this {type(obj).__name__} is being changed by "
                    f"{other[0]} in thread {_thread_name(other[1])!r}; one model (or online "
                    "trainer) cannot be trained by two calls at once. Give each thread "
                    "its own model (copy.deepcopy), or wait for the other call."
                )
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        for obj in self.objects:
            _holders.pop(id(obj), None)
        return False


class _Deferral:
    """A SIGINT handler that holds the signal back while updates are written.

    Outside the blocks of :func:`uninterrupted` it calls the handler it
    replaced; inside, it notes the signal, and the outermost block's end
    calls that handler.
    """

    active: _Deferral | None = None  # the installed one (main thread only)

    def __init__(self, original: _Handler) -> None:
        self.original = original
        self.depth = 0
        self.caught: tuple[int, FrameType | None] | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.depth:
            self.caught = (signum, frame)
        else:
            self.original(signum, frame)

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth and self.caught is not None:
            caught, self.caught = self.caught, None
            self.original(*caught)


class _Swap:
    """:func:`uninterrupted` where no deferral is installed: the SIGINT handler swapped for the block."""

    def __enter__(self) -> None:
        self.deferral: _Deferral | None = None
        if threading.current_thread() is threading.main_thread():
            original = signal.getsignal(signal.SIGINT)
            if callable(original):
                self.deferral = _Deferral(original)
                signal.signal(signal.SIGINT, self.deferral)
                self.deferral.__enter__()

    def __exit__(self, *exc: object) -> None:
        deferral = self.deferral
        if deferral is not None:
            signal.signal(signal.SIGINT, deferral.original)
            deferral.__exit__()


def uninterrupted() -> _Deferral | _Swap:
    """Return a context manager that runs its block whole: a SIGINT during it is handled after it.

    Python runs signal handlers between any two bytecodes of the main
    thread, so a Ctrl-C could otherwise stop an update with some arrays
    written and others not. Inside :func:`interrupts_deferrable` (a fit's
    loop) this costs a counter; elsewhere the SIGINT handler, when it is a
    Python function, is swapped for the block (two system calls). Other
    threads never run handlers: nothing to do there.
    """
    deferral = _Deferral.active
    if deferral is not None and threading.current_thread() is threading.main_thread():
        return deferral
    return _Swap()


def deferral_is_cheap() -> bool:
    """Return True when :func:`uninterrupted` costs no system call here.

    Inside :func:`interrupts_deferrable`, or in a thread other than the main
    one (which never runs signal handlers).
    """
    return _Deferral.active is not None or threading.current_thread() is not threading.main_thread()


@contextlib.contextmanager
def interrupts_deferrable() -> Iterator[None]:
    """Around a loop of updates: install the SIGINT handler of :func:`uninterrupted` once."""
    handler = signal.getsignal(signal.SIGINT)
    if (
        _Deferral.active is not None
        or threading.current_thread() is not threading.main_thread()
        or not callable(handler)
    ):
        yield
        return
    deferral = _Deferral(handler)
    signal.signal(signal.SIGINT, deferral)
    _Deferral.active = deferral
    try:
        yield
    finally:
        _Deferral.active = None
        signal.signal(signal.SIGINT, deferral.original)


def check_writable(model: Trainable, what: str) -> None:
    """Refuse to train a model whose weights were made read-only (they are updated in place)."""
    if model._writable():
        return
    for name, arr in model.parameters().items():
        if not arr.flags.writeable:
            raise ValueError(
                f"{name} is read-only, but {what} updates the weights in place; assign a "
                f"writable copy first (model.{name} = model.{name}.copy())"
            )
