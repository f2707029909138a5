# SPDX-License-Identifier: BSD-3-Clause
"""crnn: the Elman recurrent network with exact gradients, in compiled Cython.

    Z^t = U X^t + W S^{t-1},   S^t = tanh(Z^t),   Y^t = V S^t
    E   = g sum_t sum_k (target^t_k - Y^t_k)^2

:class:`RNN` runs the network and computes the exact gradient of E with
respect to U, W, V and S^0, by backpropagation through time or by real-time
recurrent learning. :mod:`crnn.reference` holds the same equations as plain
Python loops, the oracle the compiled kernels are tested against.
:func:`save` and :func:`load` keep a model in one ``.npz`` file;
:mod:`crnn.datasets` generates sine waves and the Mackey-Glass series.
"""

from crnn import datasets, reference
from crnn._io import load, save
from crnn._online import OnlineRTRL
from crnn._rnn import RNN, Gradient

# The one place the version is written; the build reads it from here.
__version__ = "0.1.0"

__all__ = ["RNN", "Gradient", "OnlineRTRL", "__version__", "datasets", "load", "reference", "save"]
