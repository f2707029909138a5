# SPDX-License-Identifier: BSD-3-Clause
"""crnn: the Elman recurrent network with exact gradients, in compiled Cython.

    Z^t = U X^t + W S^{t-1} (+ b),   S^t = (1 - a) S^{t-1} + a f(Z^t),   Y^t = V S^t (+ c)
    E   = g sum_t sum_k w^t_k (target^t_k - Y^t_k)^2

Elman's network is f = tanh, a = 1, no biases and every weight w = 1 (the
defaults). :class:`RNN` runs the network and computes the exact gradient of
E with respect to U, W, V (b, c) and S^0, by backpropagation through time or
by Williams and Zipser's real-time recurrent learning. :mod:`crnn.reference` holds the same equations as plain
Python loops, the oracle the compiled kernels are tested against.
:func:`save` and :func:`load` keep a model in one ``.npz`` file;
:mod:`crnn.datasets` generates sine waves and the Mackey-Glass series.
"""

from crnn._online import OnlineRTRL
from crnn._rnn import RNN, Gradient, SequenceGradients
from crnn._version import __version__

__all__ = [
    "RNN",
    "Gradient",
    "OnlineRTRL",
    "SequenceGradients",
    "__version__",
    "datasets",
    "dynamics",
    "load",
    "online",
    "reference",
    "save",
]

# Imported on first use (PEP 562), to keep ``import crnn`` fast: name -> (module, attribute).
# crnn._saving (with crnn._io) pulls in zipfile, hashlib, json and secrets (~10 ms).
_LAZY = {
    "datasets": ("crnn.datasets", None),
    "reference": ("crnn.reference", None),
    "dynamics": ("crnn.dynamics", None),
    "online": ("crnn.online", None),
    "load": ("crnn._saving", "load"),
    "save": ("crnn._saving", "save"),
    # scikit-learn's interface, which needs scikit-learn: not in __all__, so
    # that ``from crnn import *`` never imports it
    "sklearn": ("crnn.sklearn", None),
}

TYPE_CHECKING = False  # typing's, without importing typing (type checkers know the name)
if TYPE_CHECKING:  # what type checkers and IDEs see
    from crnn import datasets, reference
    from crnn._saving import load, save


# Hidden from type checkers, which see the imports above: to them, a name
# crnn does not have is an error, not whatever __getattr__ might return.
if not TYPE_CHECKING:

    def __getattr__(name):
        """Import a lazy attribute (``crnn.datasets``, ``crnn.save``...) on first use."""
        try:
            module_name, attr = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        import importlib

        value = importlib.import_module(module_name)
        if attr is not None:
            value = getattr(value, attr)
        globals()[name] = value  # later look-ups do not come here
        return value

    def __dir__():
        return sorted(set(globals()) | set(__all__))
