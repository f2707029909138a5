# SPDX-License-Identifier: BSD-3-Clause
"""The public model class: validation, then one call into ``crnn._kernels``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np

from crnn import _kernels
from crnn._init import initial_biases, initial_weights
from crnn._validation import (
    as_float_array,
    as_sequence_list,
    as_sequence_pairs,
    check_activation,
    check_alloc,
    check_bool,
    check_dtype,
    check_g,
    check_int,
    check_leak,
    check_method,
    check_n_threads,
    check_real,
    check_sample_weight,
    check_shape,
    check_size,
    is_sequence_list,
    make_rng,
    sequence_weights,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from crnn import _io
    from crnn._laplace import Laplace
    from crnn._typing import (
        Activation,
        ArrayLike,
        FloatArray,
        FloatDType,
        Init,
        Method,
        OptimizerName,
        PathLike,
        Seed,
        Self,
    )

__all__ = ["RNN", "Gradient", "SequenceGradients"]


@dataclass(frozen=True, repr=False)
class Gradient:
    """The exact gradient of the loss E, as returned by :meth:`RNN.gradient`.

    Attributes
    ----------
    U : ndarray of shape (hidden_size, input_size)
        dE/dU.
    W : ndarray of shape (hidden_size, hidden_size)
        dE/dW.
    V : ndarray of shape (output_size, hidden_size)
        dE/dV.
    s0 : ndarray of shape (hidden_size,) or (N, hidden_size)
        dE/dS^0, the gradient with respect to the initial state, with the
        shape of the ``s0`` that was used (see :meth:`RNN.gradient`).
    loss : float
        E, summed over the batch.
    method : str
        ``"bptt"`` or ``"rtrl"``.
    b : ndarray of shape (hidden_size,) or None
        dE/db, when the model has biases (``bias=True``); None otherwise.
    c : ndarray of shape (output_size,) or None
        dE/dc, when the model has biases; None otherwise.
    """

    U: FloatArray
    W: FloatArray
    V: FloatArray
    s0: FloatArray
    loss: float
    method: Method
    b: FloatArray | None = None
    c: FloatArray | None = None

    @classmethod
    def _of(
        cls,
        U: FloatArray,
        W: FloatArray,
        V: FloatArray,
        s0: FloatArray,
        loss: float,
        method: str,
        b: FloatArray | None,
        c: FloatArray | None,
    ) -> Gradient:
        """Build one from fields already checked: the fields set without the frozen checks."""
        self = object.__new__(cls)
        fields = self.__dict__
        fields["U"], fields["W"], fields["V"], fields["s0"] = U, W, V, s0
        fields["loss"], fields["method"], fields["b"], fields["c"] = loss, method, b, c
        return self

    def __repr__(self) -> str:
        biases = "" if self.b is None else f", b: {self.b.shape}, c: {self.c.shape}"  # type: ignore[union-attr]
        return (
            f"Gradient(method={self.method!r}, loss={self.loss!r}, U: {self.U.shape}, "
            f"W: {self.W.shape}, V: {self.V.shape}{biases}, s0: {self.s0.shape}, "
            f"dtype={self.U.dtype})"
        )


@dataclass(frozen=True, repr=False)
class SequenceGradients(Gradient):
    """Each sequence's own gradient, as :meth:`RNN.gradient` returns with ``per_sequence=True``.

    The fields of :class:`Gradient` with a leading axis of N, one row per
    sequence (N = 1 for one sequence given as (T, n)): ``U`` (N, d, n),
    ``W`` (N, d, d), ``V`` (N, m, d), ``b`` (N, d) and ``c`` (N, m) with
    biases, ``s0`` (N, d) (each sequence's dE_i/dS^0, also when a (d,)
    ``s0`` is shared) and ``loss`` (N,), each sequence's E_i. Their sums
    over the first axis are the batch's :class:`Gradient`, to rounding.
    """

    loss: FloatArray  # type: ignore[assignment]  # (N,): one loss per sequence

    def __repr__(self) -> str:
        return (
            f"SequenceGradients(method={self.method!r}, N={self.loss.shape[0]}, "
            f"dtype={self.U.dtype})"
        )


class RNN:
    r"""The Elman recurrent network, with exact gradients.

    .. math::

        Z^t = U X^t + W S^{t-1} (+ b), \quad S^t = (1 - a) S^{t-1} + a f(Z^t),
        \quad Y^t = V S^t (+ c)

        E = g \sum_t \sum_k w^t_k (\hat Y^t_k - Y^t_k)^2

    for t = 1..T, where :math:`\hat Y^t` is the target, :math:`S^0` the
    initial state (zeros unless given), f the activation (tanh by default),
    a the leak rate (1 by default: :math:`S^t = f(Z^t)`) and w the weights
    of the squared errors (1 unless ``sample_weight`` is given). The biases
    b and c are there only with ``bias=True``. Elman's network is the
    default: tanh, no leak, no biases.

    Parameters
    ----------
    input_size : int
        n, the size of each input X^t.
    hidden_size : int
        d, the size of the state S^t.
    output_size : int, optional
        m, the size of each output Y^t. Defaults to ``input_size`` (a
        next-step predictor).
    dtype : {numpy.float64, numpy.float32}, default numpy.float64
        Precision of the weights and of every computation. Data of another
        dtype is converted to this one.
    seed : None, int or numpy.random.Generator, optional
        Source of the initial weights, for reproducibility.
    n_threads : int, optional
        Threads over the sequences of a batch (OpenMP builds only).
        None chooses from the size of the work, up to the CPUs the process
        may use and OpenMP's limit (``OMP_NUM_THREADS``, or threadpoolctl's
        ``threadpool_limits(1, "openmp")``); -1 means all CPUs, -2 all but
        one. Results are bit-for-bit the same for every thread count.
    init : {"uniform", "glorot", "normal", "orthogonal"} or callable, default "uniform"
        How the initial weights are drawn: "uniform" is
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's rule for ``nn.RNN``),
        "glorot" U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), "normal"
        N(0, 1/fan_in), "orthogonal" a random orthogonal W (Glorot U and V).
        A callable ``init(shape, fan_in, fan_out, rng)`` returns each array.
    spectral_radius : float, optional
        Scale the initial W so that its largest eigenvalue modulus is this.
    bias : bool, default False
        Add the biases b (hidden_size,) and c (output_size,): Z^t = U X^t +
        W S^{t-1} + b and Y^t = V S^t + c. They are trained, saved and
        differentiated like the weights.
    activation : {"tanh", "relu", "identity", "logistic"}, default "tanh"
        f. "relu" is max(z, 0), whose derivative is taken as 0 at z = 0
        (PyTorch's convention); "logistic" is 1 / (1 + exp(-z)).
    leak : float, default 1.0
        The leak rate a, in (0, 1]: each state keeps 1 - a of the one before
        (a leaky-integrator or rate network, as in reservoir computing). 1
        is the Elman network's cell.

    Attributes
    ----------
    U : ndarray of shape (hidden_size, input_size)
    W : ndarray of shape (hidden_size, hidden_size)
    V : ndarray of shape (output_size, hidden_size)
        The weights. They may be assigned (the value is checked and copied)
        or changed in place.
    b : ndarray of shape (hidden_size,) or None
    c : ndarray of shape (output_size,) or None
        The biases (None without ``bias=True``), assigned or changed likewise.

    Notes
    -----
    fan_in is n for U and d for W and V; fan_out is d for U and W and m for V.
    With ``init="uniform"`` the biases are drawn from U(-1/sqrt(d),
    1/sqrt(d)), as PyTorch draws them; the other initialisers start them at 0.

    Examples
    --------
    >>> import numpy as np
    >>> import crnn
    >>> rnn = crnn.RNN(2, 8, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> S, Y = rnn.forward(X)
    >>> S.shape, Y.shape
    ((50, 8), (50, 2))
    >>> G = rnn.gradient(X[:-1], X[1:])
    >>> G.U.shape, G.W.shape, G.V.shape
    ((8, 2), (8, 8), (2, 8))
    """

    _b: FloatArray | None = None  # no biases (also for models pickled before biases existed)
    _c: FloatArray | None = None
    _state: FloatArray | None = None  # the state of step(): zeros
    # Elman's cell (also for models pickled before there was a choice)
    _activation: str = "tanh"
    _leak: float = 1.0
    _cell: tuple[int, float] = _kernels.ELMAN
    # set by __init__ or from_weights
    _dtype: np.dtype[Any]
    _n_threads: int | None
    _size: tuple[int, int, int]
    _theta: FloatArray
    _U: FloatArray
    _W: FloatArray
    _V: FloatArray
    # set by fit and partial_fit (see fit's Notes)
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    best_loss_: float
    best_validation_score_: float | None
    n_iter_: int
    penalty_curve_: list[float]
    _fit_state: dict[str, Any]
    # set by the crnn command, and saved (_SCALING, _INTERRUPTED)
    data_mean_: FloatArray
    data_scale_: FloatArray
    interrupted_after_epoch_: int

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        dtype: FloatDType = np.float64,
        seed: Seed = None,
        n_threads: int | None = None,
        init: Init = "uniform",
        spectral_radius: float | None = None,
        bias: bool = False,
        activation: Activation = "tanh",
        leak: float = 1.0,
    ) -> None:
        bias = check_bool(bias, "bias")
        self._set_cell(activation, leak)
        n = check_size(input_size, "input_size")
        d = check_size(hidden_size, "hidden_size")
        m = n if output_size is None else check_size(output_size, "output_size")
        self._dtype = check_dtype(dtype)
        self.n_threads = n_threads
        for shape, name in (((d, n), "U"), ((d, d), "W"), ((m, d), "V")):
            check_alloc(shape, self._dtype, f"weight {name}")
        rng = make_rng(seed)
        self._size = (n, d, m)  # fixed: an in-place reshape of a weight cannot change it
        U, W, V = initial_weights(n, d, m, init, spectral_radius, rng, self._dtype)
        self._allocate(bias)
        self._U[...], self._W[...], self._V[...] = U, W, V
        if bias:
            self._b[...], self._c[...] = initial_biases(d, m, init, rng, self._dtype)  # type: ignore[index]

    @classmethod
    def from_weights(
        cls,
        U: ArrayLike,
        W: ArrayLike,
        V: ArrayLike,
        *,
        b: ArrayLike | None = None,
        c: ArrayLike | None = None,
        dtype: FloatDType | None = None,
        n_threads: int | None = None,
        activation: Activation = "tanh",
        leak: float = 1.0,
    ) -> Self:
        """Build a model from given weights (copied).

        Parameters
        ----------
        U, W, V : array_like
            Weights of shapes (d, n), (d, d) and (m, d).
        b, c : array_like of shapes (d,) and (m,), optional
            Biases. Giving either makes a model with biases (``bias=True``);
            the one not given starts at zeros.
        dtype : {None, numpy.float64, numpy.float32}
            Precision of the model. None keeps float32 when all the given
            arrays are float32 and uses float64 otherwise.
        n_threads : int, optional
            As in :class:`RNN`.
        activation : {"tanh", "relu", "identity", "logistic"}, default "tanh"
            As in :class:`RNN`.
        leak : float, default 1.0
            As in :class:`RNN`.

        Returns
        -------
        RNN
        """
        cell = (check_activation(activation), check_leak(leak))
        if dtype is None:
            dts: set[np.dtype[Any] | None] = set()
            for w in (U, W, V, b, c):
                if w is None:
                    continue
                try:
                    dts.add(np.asarray(w).dtype)
                except (ValueError, TypeError):  # refused, with its name, below
                    dts.add(None)
            dtype = np.float32 if dts == {np.dtype(np.float32)} else np.float64
        dtype = check_dtype(dtype)
        U = as_float_array(U, "U", dtype, 2)
        W = as_float_array(W, "W", dtype, 2)
        V = as_float_array(V, "V", dtype, 2)
        d, n = U.shape
        if d == 0 or n == 0:
            raise ValueError(f"U must have shape (d, n) with d, n >= 1, got {U.shape}")
        check_shape(W, "W (hidden_size x hidden_size, from U's rows)", (d, d))
        if V.shape[0] == 0:
            raise ValueError(f"V must have shape (m, {d}) with m >= 1, got {V.shape}")
        check_shape(V, "V", (V.shape[0], d))
        m = V.shape[0]
        bias = b is not None or c is not None
        if bias:
            b = np.zeros(d, dtype) if b is None else as_float_array(b, "b", dtype, 1)
            c = np.zeros(m, dtype) if c is None else as_float_array(c, "c", dtype, 1)
            check_shape(b, "b (hidden_size,)", (d,))
            check_shape(c, "c (output_size,)", (m,))
        self = cls.__new__(cls)
        self._set_cell(*cell)
        self._dtype = dtype
        self.n_threads = n_threads
        self._size = (n, d, m)
        self._allocate(bias)
        self._U[...], self._W[...], self._V[...] = U, W, V
        if bias:
            self._b[...], self._c[...] = b, c  # type: ignore[index]
        return self

    def _set_cell(self, activation: object, leak: object) -> None:
        """Check and set the cell: the activation's name and the leak rate."""
        self._activation = check_activation(activation)
        self._leak = check_leak(leak)
        self._cell = _kernels.cell(self._activation, self._leak)

    def _allocate(self, bias: bool) -> None:
        """Give the model its parameter vector theta (zeros) and U, W, V, b, c as views of it.

        The kernels read and update theta; the attributes are arrays that
        share its memory, so a change made through either is seen by both.
        """
        n, d, m = self._size
        self._theta, views = _kernels.parameters(n, d, m, bias, self._dtype)
        self._U, self._W, self._V = views["U"], views["W"], views["V"]
        self._b, self._c = views.get("b"), views.get("c")

    def __getstate__(self) -> dict[str, Any]:
        # theta holds the parameters; the views are made again from it
        state = self.__dict__.copy()
        for name in ("_U", "_W", "_V", "_b", "_c"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        # a dtype comes back from pickle (and deepcopy) as a new object equal
        # to numpy's own; the fast paths compare dtypes by identity
        if "_dtype" in state:
            state["_dtype"] = np.dtype(state["_dtype"].name)
        theta = state.pop("_theta", None)
        arrays = {k: state.pop(k, None) for k in ("_U", "_W", "_V", "_b", "_c")}
        self.__dict__.update(state)
        if theta is None:  # pickled before the parameters were one vector
            theta = np.concatenate([a.ravel() for a in arrays.values() if a is not None])
        # a model of its own (a shallow copy too), on the kernels' alignment
        n, d, m = self._size
        self._allocate(theta.size > d * (n + d + m))
        self._theta[...] = theta

    # ------------------------------------------------------------------ attributes

    @property
    def input_size(self) -> int:
        """n, the size of each input."""
        return self._size[0]

    @property
    def hidden_size(self) -> int:
        """d, the size of the state."""
        return self._size[1]

    @property
    def output_size(self) -> int:
        """m, the size of each output."""
        return self._size[2]

    @property
    def dtype(self) -> np.dtype[Any]:
        """The model's floating dtype."""
        return self._dtype

    @property
    def n_threads(self) -> int | None:
        """Threads over a batch: None (choose), a positive count, or -1 for all CPUs."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value: int | None) -> None:
        check_n_threads(value)
        self._n_threads = value

    @property
    def bias(self) -> bool:
        """True when the model has the biases b and c."""
        return self._b is not None

    @property
    def activation(self) -> str:
        """The activation f of the cell: "tanh", "relu", "identity" or "logistic"."""
        return self._activation

    @property
    def leak(self) -> float:
        """The leak rate a of the cell, in (0, 1] (1: no leak)."""
        return self._leak

    def _param_names(self) -> tuple[str, ...]:
        """Return the names of the trained arrays: U, W, V, and b, c with biases."""
        return ("U", "W", "V", "b", "c") if self.bias else ("U", "W", "V")

    def parameters(self) -> dict[str, FloatArray]:
        """Return the trained arrays by name: U, W, V, and b, c with biases.

        Returns
        -------
        dict of str to ndarray
            A new dict, in the order U, W, V, b, c, whose values are the
            model's own arrays (not copies, like torch's
            ``named_parameters``): changing them in place changes the model.
            They are views of one vector of every parameter, in this order
            and row-major, which the kernels read; assigning an attribute
            (``rnn.U = ...``) or :meth:`set_parameters` copies values into
            it, so every view, old or new, sees them.

        See Also
        --------
        set_parameters : assign several of them, checked and copied.

        Examples
        --------
        >>> import crnn
        >>> rnn = crnn.RNN(2, 3, bias=True, seed=0)
        >>> list(rnn.parameters())
        ['U', 'W', 'V', 'b', 'c']
        >>> rnn.parameters()["W"] is rnn.W
        True
        """
        params = {"U": self._U, "W": self._W, "V": self._V}
        if self.bias:
            params["b"], params["c"] = self._b, self._c  # type: ignore[assignment]
        return params

    def set_parameters(self, params: Mapping[str, ArrayLike], *, check_finite: bool = True) -> None:
        """Assign trained arrays by name, each checked and copied.

        Parameters
        ----------
        params : mapping of str to array_like
            Some or all of the names of :meth:`parameters`, each with an
            array of that parameter's shape (converted to the model's dtype
            and copied, as when the attribute is assigned).
        check_finite : bool, default True
            Refuse NaN and infinity (as assigning an attribute does).

        Raises
        ------
        ValueError
            If a name is not one of the model's parameters, or an array has
            another shape or (with check_finite) a NaN or infinity; no
            parameter is changed then.
        TypeError
            If a value is not an array of real numbers.
        """
        names = self._param_names()
        unknown = [k for k in params if k not in names]
        if unknown:
            raise ValueError(
                f"params must map names of this model's parameters {list(names)}, "
                f"got {unknown[0]!r}"
            )
        d, n, m = self.hidden_size, self.input_size, self.output_size
        shapes: dict[str, tuple[int, ...]] = {
            "U": (d, n),
            "W": (d, d),
            "V": (m, d),
            "b": (d,),
            "c": (m,),
        }
        checked = {}
        for name, value in params.items():
            if value is None:
                raise TypeError(f"{name} must be an array of shape {shapes[name]}, got None")
            arr = as_float_array(value, name, self._dtype, len(shapes[name]), check_finite)
            check_shape(arr, name, shapes[name])
            checked[name] = arr
        for name, arr in checked.items():
            self._put(name, arr)

    def _set_weight(self, name: str, value: ArrayLike, shape: tuple[int, ...]) -> None:
        arr = as_float_array(value, name, self._dtype, len(shape))
        check_shape(arr, name, shape)
        self._put(name, arr)

    def _put(self, name: str, arr: FloatArray) -> None:
        """Copy the checked array ``arr`` into parameter ``name`` (a fresh view of theta)."""
        start, stop, shape = _kernels.parameter_layout(*self._size, True)[name]
        view = self._theta[start:stop].reshape(shape)
        view[...] = arr
        setattr(self, "_" + name, view)

    def _set_bias(self, name: str, value: ArrayLike | None, size: int) -> None:
        if not self.bias:
            raise ValueError(
                f"this model has no biases, so {name} cannot be set; build it with "
                "bias=True (or RNN.from_weights(..., b=..., c=...))"
            )
        if value is None:
            raise TypeError(f"{name} must be an array of shape ({size},), got None")
        self._set_weight(name, value, (size,))

    @property
    def U(self) -> FloatArray:
        """Input-to-hidden weights, shape (hidden_size, input_size)."""
        return self._U

    @U.setter
    def U(self, value: ArrayLike) -> None:
        self._set_weight("U", value, (self.hidden_size, self.input_size))

    @property
    def W(self) -> FloatArray:
        """Hidden-to-hidden weights, shape (hidden_size, hidden_size)."""
        return self._W

    @W.setter
    def W(self, value: ArrayLike) -> None:
        self._set_weight("W", value, (self.hidden_size, self.hidden_size))

    @property
    def V(self) -> FloatArray:
        """Hidden-to-output weights, shape (output_size, hidden_size)."""
        return self._V

    @V.setter
    def V(self, value: ArrayLike) -> None:
        self._set_weight("V", value, (self.output_size, self.hidden_size))

    @property
    def b(self) -> FloatArray | None:
        """Hidden bias, shape (hidden_size,), or None without biases."""
        return self._b

    @b.setter
    def b(self, value: ArrayLike) -> None:
        self._set_bias("b", value, self.hidden_size)

    @property
    def c(self) -> FloatArray | None:
        """Output bias, shape (output_size,), or None without biases."""
        return self._c

    @c.setter
    def c(self, value: ArrayLike) -> None:
        self._set_bias("c", value, self.output_size)

    def __repr__(self) -> str:
        extra = ", bias=True" if self.bias else ""
        if self._activation != "tanh":
            extra += f", activation={self._activation!r}"
        if self._leak != 1:
            extra += f", leak={self._leak!r}"
        return (
            f"RNN(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"output_size={self.output_size}, dtype={self._dtype.name}{extra})"
        )

    # ------------------------------------------------------------------ preparation

    def _weights(self, check_finite: bool) -> FloatArray:
        """Return theta, the parameters as the kernels take them, after the complete checks.

        U, W, V, b, c are public arrays that may have been changed in place
        (values, or a shape given in place), so each is checked again at
        every call, by name, which is cheap next to any kernel.
        """
        d, n, m = self.hidden_size, self.input_size, self.output_size
        shapes: list[tuple[str, tuple[int, ...]]] = [("U", (d, n)), ("W", (d, d)), ("V", (m, d))]
        if self.bias:
            shapes += [("b", (d,)), ("c", (m,))]
        params = self.parameters()
        for name, shape in shapes:
            arr = as_float_array(params[name], name, self._dtype, len(shape), check_finite)
            check_shape(arr, name, shape)
        return self._theta

    def _writable(self) -> bool:
        """Return True when none of U, W, V, b, c was made read-only (``check_writable``)."""
        b, c = self._b, self._c
        return (
            self._U.flags.writeable
            and self._W.flags.writeable
            and self._V.flags.writeable
            and (b is None or (b.flags.writeable and c.flags.writeable))  # type: ignore[union-attr]
        )

    def _kernel_weights(self) -> FloatArray | None:
        """Return theta when U, W, V, b, c have their shapes and dtype, else None.

        The fast path of every call: the kernels read theta, whose views the
        attributes are; their shapes and dtype are checked here (an in-place
        change of either is refused by ``_weights``, by name), their values
        by the kernel itself, which counts the non-finite ones in the pass
        it makes anyway.
        """
        dt = self._dtype
        n, d, m = self._size
        U, W, V = self._U, self._W, self._V
        if not (
            U.shape == (d, n)
            and W.shape == (d, d)
            and V.shape == (m, d)
            and U.dtype is dt
            and W.dtype is dt
            and V.dtype is dt
        ):
            return None
        b, c = self._b, self._c
        if b is not None and not (
            b.shape == (d,) and c.shape == (m,) and b.dtype is dt and c.dtype is dt  # type: ignore[union-attr]
        ):
            return None
        return self._theta

    def _checked(
        self,
        X: ArrayLike,
        target: ArrayLike | None,
        s0: ArrayLike | None,
        check_finite: bool,
        need_target: bool,
    ) -> tuple[FloatArray, FloatArray, Any, FloatArray, bool, str, bool]:
        """Validate the weights and data of a call: (params, X3, t3, s02, batched, s0_kind, deferred).

        Shapes, types and layouts are checked here. When ``deferred`` is
        True the values are not: the kernel counts the non-finite ones and
        the caller passes the count to ``_refuse_nonfinite``. Whatever is
        wrong is refused with the message, and in the order, of the complete
        checks (``_weights`` then ``_data``), which run whenever the fast
        path finds anything amiss or has nothing to compute.
        """
        params = self._kernel_weights()
        if params is not None:
            try:
                data = self._data(X, target, s0, False, need_target)
            except (TypeError, ValueError, MemoryError):
                params = None  # the complete checks below raise, in their order
            else:
                X3 = data[0]
                if X3.shape[0] * X3.shape[1] > 0:
                    return (params, *data, check_finite)
        params = self._weights(check_finite)
        return (params, *self._data(X, target, s0, check_finite, need_target), False)

    def _refuse_nonfinite(
        self,
        bad: int,
        X: ArrayLike,
        target: ArrayLike | None,
        s0: ArrayLike | None,
        need_target: bool,
    ) -> None:
        """Raise the complete checks' error when a kernel counted non-finite values."""
        if bad:
            self._weights(True)
            self._data(X, target, s0, True, need_target)
            raise ValueError(f"the weights or data hold {bad} NaN or infinite values")

    def _data(
        self,
        X: ArrayLike,
        target: ArrayLike | None,
        s0: ArrayLike | None,
        check_finite: bool,
        need_target: bool,
    ) -> tuple[FloatArray, Any, FloatArray, bool, str]:
        """Validate and convert X, target and s0 to (N, T, n), (N, T, m) (or None), (N, d)."""
        dt = self._dtype
        n_in, d, m = self._size
        X = as_float_array(X, "X", dt, (2, 3), check_finite)
        shape = X.shape
        if shape[-1] != n_in:
            raise ValueError(
                f"X must have {self.input_size} features in its last axis (the model's "
                f"input_size), got shape {X.shape}"
            )
        batched = len(shape) == 3
        if batched:
            X3, N = X, shape[0]
        else:
            X3, N = X[np.newaxis], 1
        target3 = None
        if need_target:
            target = as_float_array(target, "target", dt, len(shape), check_finite)
            if target.shape[-1] != m or target.shape[:-1] != shape[:-1]:
                expected = (*X.shape[:-1], m)
                raise ValueError(
                    f"target must have shape {expected} (X's "
                    f"{'batch and time' if batched else 'time'} axes and the model's "
                    f"output_size {self.output_size}), got {target.shape}"
                )
            target3 = target if batched else target[np.newaxis]
        if s0 is None:
            s0_kind = "none"
            if d < N:  # else it is smaller than W
                check_alloc((N, d), dt, "the initial states s0")
            s02 = np.zeros((N, d), dtype=dt)
        else:
            s0 = as_float_array(s0, "s0", dt, (1, 2) if batched else 1, check_finite)
            if s0.ndim == 1:
                check_shape(s0, "s0", (d,))
                s0_kind = "shared"
                check_alloc((N, d), dt, "the initial states s0")
                s02 = np.ascontiguousarray(np.broadcast_to(s0, (N, d)))
            else:
                check_shape(s0, "s0", (N, d))
                s0_kind = "batch"
                s02 = s0
        return X3, target3, s02, batched, s0_kind

    def _list_data(
        self,
        X: Any,
        target: Any,
        s0: Any,
        sample_weight: Any,
        check_finite: bool,
        need_target: bool,
    ) -> tuple[list[FloatArray], list[FloatArray] | None, FloatArray, str, list[FloatArray] | None]:
        """Validate a list of sequences: (Xs, targets, s02, s0_kind, weights).

        Xs and targets are lists of (T_i, n) and (T_i, m) arrays, s02 is
        (N, d), weights a list of (T_i, m) arrays or None.
        """
        dt = self._dtype
        n, d, m = self._size
        targets = weights = None
        if need_target:
            Xs, targets = as_sequence_pairs(X, target, dt, n, m, check_finite)
            if sample_weight is not None:
                weights = sequence_weights(sample_weight, targets, dt)
        else:
            Xs = as_sequence_list(X, "X", dt, n, "the model's input_size", check_finite)
        N = len(Xs)
        if s0 is None:
            s0_kind, s02 = "none", np.zeros((N, d), dtype=dt)
        else:
            s0 = as_float_array(s0, "s0", dt, (1, 2), check_finite)
            if s0.ndim == 1:
                check_shape(s0, "s0", (d,))
                s0_kind, s02 = "shared", np.ascontiguousarray(np.broadcast_to(s0, (N, d)))
            else:
                check_shape(s0, "s0", (N, d))
                s0_kind, s02 = "batch", s0
        return Xs, targets, s02, s0_kind, weights

    def _refuse_nonfinite_list(self, bad: int) -> None:
        if bad:  # the checks were skipped (check_finite=False) or the weights changed
            self._weights(True)
            raise ValueError(f"the weights or data hold {bad} NaN or infinite values")

    # ------------------------------------------------------------------ computation

    @overload
    def forward(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: Literal[False] = False,
        check_finite: bool = True,
    ) -> tuple[FloatArray, FloatArray]: ...
    @overload
    def forward(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: Literal[True],
        check_finite: bool = True,
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...
    @overload
    def forward(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: bool,
        check_finite: bool = True,
    ) -> tuple[FloatArray, FloatArray] | tuple[FloatArray, FloatArray, FloatArray]: ...
    def forward(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: bool = False,
        check_finite: bool = True,
    ) -> tuple[FloatArray, FloatArray] | tuple[FloatArray, FloatArray, FloatArray]:
        r"""Run the network over one sequence or a batch of sequences.

        .. math:: S^t = (1 - a) S^{t-1} + a f(U X^t + W S^{t-1} (+ b)), \quad Y^t = V S^t (+ c)

        Parameters
        ----------
        X : array_like of shape (T, n) or (N, T, n)
            One sequence of T inputs, or N sequences. Integer, boolean,
            non-contiguous and read-only arrays are accepted and converted to
            the model's dtype.
        s0 : array_like of shape (d,) or (N, d), optional
            Initial state; zeros by default. A (d,) state is used for every
            sequence of a batch.
        return_state : bool, default False
            Also return the final state S^T (s0 when T = 0), to pass as the
            ``s0`` of the next chunk of a long series: feeding a series in
            chunks gives the same result as one call.
        check_finite : bool, default True
            Refuse NaN and infinity in X, s0 and the weights.

        Returns
        -------
        S : ndarray of shape (T, d) or (N, T, d)
            States S^1 .. S^T.
        Y : ndarray of shape (T, m) or (N, T, m)
            Outputs Y^1 .. Y^T.
        state : ndarray of shape (d,) or (N, d)
            The final state, only when ``return_state`` is True.

        Raises
        ------
        ValueError, TypeError
            If an argument has the wrong shape, type or values.
        """
        return_state = check_bool(return_state, "return_state")
        check_finite = check_bool(check_finite, "check_finite")
        if isinstance(X, (list, tuple)) and is_sequence_list(X):
            params = self._weights(check_finite)
            Xs, _, s0s, _, _ = self._list_data(X, None, s0, None, check_finite, False)
            Ss, Ys, nbad = _kernels.forward_list(
                params, self._size, Xs, s0s, self._n_threads, self._cell
            )
            self._refuse_nonfinite_list(nbad)
            if not return_state:
                return cast("tuple[FloatArray, FloatArray]", (Ss, Ys))  # lists: see Returns
            last = np.array([Si[-1] if Si.shape[0] else s0s[i] for i, Si in enumerate(Ss)])
            out3 = (Ss, Ys, last.reshape(len(Ss), self.hidden_size))
            return cast("tuple[FloatArray, FloatArray, FloatArray]", out3)
        params, X3, _, s02, batched, _, deferred = self._checked(X, None, s0, check_finite, False)
        S, Y, bad = _kernels.forward(params, self._size, X3, s02, self._n_threads, self._cell)
        if deferred:
            self._refuse_nonfinite(bad, X, None, s0, False)
        T = X3.shape[1]
        out: tuple[FloatArray, ...] = (S, Y) if batched else (S[0], Y[0])
        if return_state:
            final = (S[:, -1] if T else s02).copy()
            out = (*out, final if batched else final[0])
        return out  # type: ignore[return-value]

    @overload
    def predict(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: Literal[False] = False,
        check_finite: bool = True,
        return_std: Literal[False] = False,
    ) -> FloatArray: ...
    @overload
    def predict(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: Literal[True],
        check_finite: bool = True,
        return_std: Literal[False] = False,
    ) -> tuple[FloatArray, FloatArray]: ...
    @overload
    def predict(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: bool,
        check_finite: bool = True,
        return_std: Literal[False] = False,
    ) -> FloatArray | tuple[FloatArray, FloatArray]: ...
    @overload
    def predict(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: Literal[False] = False,
        check_finite: bool = True,
        return_std: Literal[True],
    ) -> tuple[FloatArray, FloatArray]: ...
    def predict(
        self,
        X: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        return_state: bool = False,
        check_finite: bool = True,
        return_std: bool = False,
    ) -> FloatArray | tuple[FloatArray, FloatArray]:
        """Return the outputs Y of :meth:`forward`.

        Parameters
        ----------
        X, s0, return_state, check_finite
            As in :meth:`forward`.
        return_std : bool, default False
            Also return the predictive standard deviation of each value,
            from the Laplace approximation that :meth:`laplace` made: the
            weights' uncertainty, J Sigma J^T (J from
            :meth:`output_jacobian`, held for the whole of X), plus the
            noise's variance. Not with ``return_state``.

        Returns
        -------
        Y : ndarray of shape (T, m) or (N, T, m)
        state : ndarray of shape (d,) or (N, d)
            The final state, only when ``return_state`` is True.
        std : ndarray of the shape of Y
            Only when ``return_std`` is True.
        """
        if check_bool(return_std, "return_std"):
            if return_state:
                raise ValueError("return_std and return_state cannot be combined")
            from crnn._laplace import check_laplace, predictive_std

            post = check_laplace(getattr(self, "laplace_", None), self._theta.shape[0])
            Y = self.predict(X, s0, check_finite=check_finite)
            J = self.output_jacobian(X, s0, check_finite=check_finite)
            if isinstance(J, list):
                std = [predictive_std(post, j).astype(self._dtype) for j in J]
                return cast("tuple[FloatArray, FloatArray]", (Y, std))
            return Y, predictive_std(post, J).astype(self._dtype)
        out = self.forward(X, s0, return_state=return_state, check_finite=check_finite)
        return (out[1], out[2]) if return_state else out[1]  # type: ignore[misc]

    def loss(
        self,
        X: ArrayLike,
        target: ArrayLike,
        s0: ArrayLike | None = None,
        g: float = 1.0,
        *,
        sample_weight: ArrayLike | None = None,
        check_finite: bool = True,
    ) -> float:
        r"""Return the loss E, summed over time, outputs and the batch.

        .. math:: E = g \sum_{\text{sequences}} \sum_t \sum_k w^t_k (\hat Y^t_k - Y^t_k)^2

        Parameters
        ----------
        X : array_like of shape (T, n) or (N, T, n)
            Inputs.
        target : array_like of shape (T, m) or (N, T, m)
            What the outputs should be, :math:`\hat Y`.
        s0 : array_like of shape (d,) or (N, d), optional
            Initial state, zeros by default.
        g : float, default 1.0
            Loss scale, > 0.
        sample_weight : array_like, optional
            w, the weights of the squared errors, finite and >= 0: shape
            (T,) for one weight per step (shared by the sequences of a
            batch), (N, T) per sequence and step, or the shape of ``target``
            for one per output value. A zero weight removes that value from
            E (and from the gradient) exactly. None: every weight is 1.
        check_finite : bool, default True
            Refuse NaN and infinity in the arguments and the weights.

        Returns
        -------
        float
        """
        g = check_g(g, self._dtype)
        check_finite = check_bool(check_finite, "check_finite")
        if isinstance(X, (list, tuple)) and is_sequence_list(X):
            params = self._weights(check_finite)
            Xs, ts, s02, _, ws = self._list_data(X, target, s0, sample_weight, check_finite, True)
            assert ts is not None
            E, bad = _kernels.loss_list(
                params, self._size, Xs, ts, s02, g, self._n_threads, self._cell, ws
            )
            self._refuse_nonfinite_list(bad)
            return float(np.sum(E, dtype=np.float64))
        params, X3, t3, s02, batched, _, deferred = self._checked(X, target, s0, check_finite, True)
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, self._dtype, t3.shape, batched)
        E, bad = _kernels.loss(params, self._size, X3, t3, s02, g, self._n_threads, self._cell, w)
        if deferred:
            self._refuse_nonfinite(bad, X, target, s0, True)
        return float(E[0]) if E.shape[0] == 1 else float(np.sum(E, dtype=np.float64))

    def gradient(
        self,
        X: ArrayLike,
        target: ArrayLike,
        s0: ArrayLike | None = None,
        g: float = 1.0,
        method: Method = "bptt",
        *,
        sample_weight: ArrayLike | None = None,
        check_finite: bool = True,
        per_sequence: bool = False,
    ) -> Gradient:
        r"""Return the exact gradient of E with respect to U, W, V and S^0.

        Both methods give the same numbers (to rounding); they differ in cost.

        ``"bptt"`` (backpropagation through time) keeps every state and runs
        backwards:

        .. math::

            G^t = V^\top e^t + W^\top \delta^{t+1} + (1 - a) G^{t+1}, \quad
            \delta^t = a f'(Z^t) \odot G^t, \quad
            G^{T+1} = \delta^{T+1} = 0, \quad e^t = -2g\, w^t \odot (\hat Y^t - Y^t)

            \frac{\partial E}{\partial U} = \sum_t \delta^t (X^t)^\top,\;
            \frac{\partial E}{\partial W} = \sum_t \delta^t (S^{t-1})^\top,\;
            \frac{\partial E}{\partial V} = \sum_t e^t (S^t)^\top,\;
            \frac{\partial E}{\partial S^0} = W^\top \delta^1 + (1 - a) G^1

        in O(T (dn + d^2 + md)) time and O(T d) memory per sequence (a batch
        whose states would take more than 64 MB runs in chunks of sequences).

        ``"rtrl"`` (Williams and Zipser's real-time recurrent learning) carries
        the sensitivities of the state forward in time,

        .. math::

            \frac{\partial s^t_l}{\partial u_{ij}} = (1 - a)
            \frac{\partial s^{t-1}_l}{\partial u_{ij}} + a f'(z^t_l) \Big(x^t_j \delta_{li}
            + \sum_m w_{lm} \frac{\partial s^{t-1}_m}{\partial u_{ij}}\Big),
            \quad
            \frac{\partial E^t}{\partial u_{ij}} = \sum_k \sum_l e^t_k v_{kl}
            \frac{\partial s^t_l}{\partial u_{ij}}

        (likewise for W, the biases and S^0), in O(T d^3 (n + d)) time and
        memory that does not depend on T. Here G^t is dE/dS^t, a the leak
        rate and f the activation; with a = 1 (Elman's cell) both are the
        textbook recursions.

        Parameters
        ----------
        X, target, s0, g, sample_weight, check_finite
            As in :meth:`loss`.
        method : {"bptt", "rtrl"}, default "bptt"
        per_sequence : bool, default False
            Return each sequence's own gradient instead of their sum: a
            :class:`SequenceGradients` whose arrays have a leading axis of N
            (each sequence computed alone, as one kernel call; several at
            once on several threads).

        Returns
        -------
        Gradient
            ``G.U``, ``G.W``, ``G.V`` (summed over the batch), ``G.s0`` and
            ``G.loss`` (E, as :meth:`loss` returns it). ``G.s0`` has shape
            (d,) for a single sequence or when a (d,) ``s0`` was shared by a
            batch (then it is summed over the batch), and (N, d), one row per
            sequence, when ``s0`` was None or (N, d) for a batch. With
            ``per_sequence=True``, a :class:`SequenceGradients`.

        References
        ----------
        R. J. Williams and D. Zipser, "A learning algorithm for continually
        running fully recurrent neural networks", Neural Computation 1(2),
        270-280, 1989.

        P. J. Werbos, "Backpropagation through time: what it does and how to
        do it", Proceedings of the IEEE 78(10), 1550-1560, 1990.
        """
        if not isinstance(method, str) or method not in ("bptt", "rtrl"):  # else checked
            check_method(method)
            method = method.lower()  # type: ignore[assignment]
        g = check_g(g, self._dtype)
        if check_finite is not True:
            check_finite = check_bool(check_finite, "check_finite")
        if per_sequence is not False and check_bool(per_sequence, "per_sequence"):
            return self._gradient_per_sequence(
                X, target, s0, g, method, sample_weight, check_finite
            )
        if isinstance(X, (list, tuple)) and is_sequence_list(X):
            params = self._weights(check_finite)
            Xs, ts, s02, s0_kind, ws = self._list_data(
                X, target, s0, sample_weight, check_finite, True
            )
            assert ts is not None
            G = _kernels.gradient_list(
                params, self._size, Xs, ts, s02, g, method, self._n_threads, self._cell, ws
            )
            self._refuse_nonfinite_list(G.nonfinite)
            ds0 = G.s0.sum(axis=0) if s0_kind == "shared" else G.s0
            loss = float(np.sum(G.E, dtype=np.float64))
            return Gradient._of(G.U, G.W, G.V, ds0, loss, method, G.b, G.c)
        params, X3, t3, s02, batched, s0_kind, deferred = self._checked(
            X, target, s0, check_finite, True
        )
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, self._dtype, t3.shape, batched)
        dU, dW, dV, db, dc, ds0, E, bad = _kernels.gradient(
            params, self._size, X3, t3, s02, g, method, self._n_threads, self._cell, w
        )
        if deferred and bad:
            self._refuse_nonfinite(bad, X, target, s0, True)
        if not batched:
            ds0 = ds0[0]
        elif s0_kind == "shared":
            ds0 = ds0.sum(axis=0)
        loss = E.item() if E.shape[0] == 1 else float(np.sum(E, dtype=np.float64))
        return Gradient._of(dU, dW, dV, ds0, loss, method, db, dc)

    # ------------------------------------------------------------------ second order

    def _sequences(
        self,
        X: ArrayLike,
        target: ArrayLike | None,
        s0: ArrayLike | None,
        sample_weight: ArrayLike | None,
        check_finite: bool,
        need_target: bool,
    ) -> tuple[FloatArray, Any, Any, FloatArray, Any, bool]:
        """Validate a call's weights and data: (theta, Xs, targets, s02, weights, batched).

        A batch stays (N, T, .) arrays (weights (N, T, m) or None); a list of
        sequences gives lists of (T_i, .) arrays. ``batched`` is False for
        one sequence given as (T, n).
        """
        params = self._weights(check_finite)
        if isinstance(X, (list, tuple)) and is_sequence_list(X):
            Xs, ts, s02, _, ws = self._list_data(
                X, target, s0, sample_weight, check_finite, need_target
            )
            return params, Xs, ts, s02, ws, True
        X3, t3, s02, batched, _ = self._data(X, target, s0, check_finite, need_target)
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, self._dtype, t3.shape, batched)
        return params, X3, t3, s02, w, batched

    def _gradient_per_sequence(
        self,
        X: ArrayLike,
        target: ArrayLike,
        s0: ArrayLike | None,
        g: float,
        method: Method,
        sample_weight: ArrayLike | None,
        check_finite: bool,
    ) -> SequenceGradients:
        """``gradient(..., per_sequence=True)``: each sequence's gradient, alone."""
        params, Xs, ts, s02, ws, _ = self._sequences(
            X, target, s0, sample_weight, check_finite, True
        )
        rows = list(Xs)  # a batch's sequences are its rows
        grads, ds0, E, bad = _kernels.gradient_per_sequence(
            params,
            self._size,
            rows,
            list(ts),
            s02,
            g,
            method,
            self._n_threads,
            self._cell,
            None if ws is None else list(ws),
        )
        self._refuse_nonfinite_list(bad)
        N = len(rows)
        parts = {
            k: grads[:, a:b].reshape(N, *shape)
            for k, (a, b, shape) in _kernels.parameter_layout(*self._size, self.bias).items()
        }
        return SequenceGradients(
            parts["U"], parts["W"], parts["V"], ds0, E, method, parts.get("b"), parts.get("c")
        )

    def flat_weights(self) -> FloatArray:
        """Return theta, every parameter in one new 1-D array.

        The order is fixed: U (d, n), W (d, d), V (m, d), then b (d,) and c
        (m,) when the model has biases, each row-major; P = d n + d d + m d
        (+ d + m) values. It is the layout of the columns of
        :meth:`output_jacobian` and of :meth:`set_flat_weights`.

        Examples
        --------
        >>> import crnn
        >>> rnn = crnn.RNN(2, 3, 1, bias=True, seed=0)
        >>> rnn.flat_weights().shape  # 3*2 + 3*3 + 1*3 + 3 + 1
        (22,)
        """
        theta: FloatArray = self._theta.copy()
        return theta

    def set_flat_weights(self, theta: ArrayLike, *, check_finite: bool = True) -> None:
        """Set every parameter from theta, in the order of :meth:`flat_weights` (checked, copied).

        Raises
        ------
        ValueError
            If theta is not 1-D of the model's P values, or (with
            check_finite) holds a NaN or infinity; nothing changes then.
        TypeError
            If theta is not an array of real numbers.
        """
        check_finite = check_bool(check_finite, "check_finite")
        arr = as_float_array(theta, "theta", self._dtype, 1, check_finite)
        check_shape(arr, "theta", self._theta.shape)
        self._weights(False)  # the views still have their shapes
        self._theta[...] = arr

    def output_jacobian(
        self, X: ArrayLike, s0: ArrayLike | None = None, *, check_finite: bool = True
    ) -> Any:
        r"""Return the exact Jacobian of the outputs with respect to the parameters.

        .. math:: J^t_{k q} = \partial Y^t_k / \partial \theta_q

        with theta in the order of :meth:`flat_weights`. Computed in the
        kernels in forward mode, from the sensitivities of the state (the
        recursion of Williams and Zipser's RTRL, see :meth:`gradient`):
        dY^t/d[U W b] = V dS^t/d[U W b], dY^t_k/dV_kj = S^t_j, dY^t_k/dc_k =
        1. Forward mode costs O(T d^2 (d n + d^2)) per sequence whatever the
        number of outputs, and no more memory than the result; reverse mode
        (one backward pass per output) would cost O(T^2 m d^2), more for
        every sequence longer than d (n + d) / m steps.

        Parameters
        ----------
        X : array_like of shape (T, n) or (N, T, n), or a list of (T_i, n)
        s0 : array_like of shape (d,) or (N, d), optional
            As in :meth:`forward`. The initial state is held fixed.
        check_finite : bool, default True

        Returns
        -------
        ndarray of shape (T, m, P) or (N, T, m, P)
            A list of (T_i, m, P) arrays for a list of sequences. For large
            data, :meth:`gauss_newton` sums J^T J without holding J.
        """
        check_finite = check_bool(check_finite, "check_finite")
        params, Xs, _, s02, _, batched = self._sequences(X, None, s0, None, check_finite, False)
        if isinstance(Xs, list):
            out = []
            for i, x in enumerate(Xs):
                J, _, bad = _kernels.output_jacobian(
                    params, self._size, x[np.newaxis], s02[i : i + 1], self._n_threads, self._cell
                )
                self._refuse_nonfinite_list(bad)
                out.append(J[0])
            return out
        J, _, bad = _kernels.output_jacobian(
            params, self._size, Xs, s02, self._n_threads, self._cell
        )
        self._refuse_nonfinite_list(bad)
        return J if batched else J[0]

    def gauss_newton(
        self,
        X: ArrayLike,
        target: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        sample_weight: ArrayLike | None = None,
        check_finite: bool = True,
    ) -> tuple[FloatArray, FloatArray, float]:
        r"""Return J^T J, J^T r and r^T r without holding J (the residuals r = Y - target).

        .. math:: H = \sum w J^\top J, \quad v = \sum w J^\top (Y - \hat Y), \quad
            \rho = \sum w (Y - \hat Y)^2

        summed over the steps, outputs and sequences (w: ``sample_weight``,
        1 by default), with J from :meth:`output_jacobian`. The gradient of
        :meth:`loss` is 2 g v, and 2 g H its Gauss-Newton approximation of
        the Hessian. The data runs in windows of at most 16 MB of J, so
        memory is O(P^2), not O(N T m P). H and v are float64.

        Parameters
        ----------
        X, target, s0, sample_weight, check_finite
            As in :meth:`loss`.

        Returns
        -------
        H : ndarray of shape (P, P)
        v : ndarray of shape (P,)
        rho : float
        """
        check_finite = check_bool(check_finite, "check_finite")
        params, Xs, ts, s02, ws, _ = self._sequences(
            X, target, s0, sample_weight, check_finite, True
        )
        H, v, E, bad = _kernels.gauss_newton(
            params, self._size, Xs, ts, s02, self._n_threads, self._cell, ws
        )
        self._refuse_nonfinite_list(bad)
        return H, v, float(E.sum())

    def laplace(
        self,
        X: ArrayLike,
        target: ArrayLike,
        s0: ArrayLike | None = None,
        *,
        sample_weight: ArrayLike | None = None,
        prior_precision: float | None = None,
        full: bool | None = None,
        check_finite: bool = True,
    ) -> Laplace:
        r"""Approximate the posterior over the weights around the current ones (Laplace).

        The targets are taken as the outputs plus Gaussian noise of variance
        sigma^2 (sigma^2 / w with ``sample_weight``), the weights theta (all
        P of :meth:`flat_weights`) as drawn from N(0, I / alpha). Around the
        current weights, which should be a minimum of the loss (after
        :meth:`fit`; ``optimizer="lm"`` gets there), the posterior is
        N(theta, Sigma) with

        .. math:: \Sigma^{-1} = \beta \sum w J^\top J + \alpha I, \quad \beta = 1 / \sigma^2

        (the Gauss-Newton Hessian, from :meth:`gauss_newton`). sigma^2 comes
        from the residuals and alpha, unless given, from maximising the
        evidence (MacKay 1992): gamma = sum beta h_i / (beta h_i + alpha),
        the well-determined parameters (h_i the eigenvalues of J^T J), then
        alpha = gamma / (theta^T theta) and sigma^2 = sum w r^2 / (n - gamma),
        repeated until they settle. Afterwards ``predict(X,
        return_std=True)`` and ``generate(..., return_std=True)`` give
        predictive standard deviations. The result is kept as
        ``laplace_`` and saved with the model; it belongs to these weights:
        call this again after training.

        Parameters
        ----------
        X, target, s0, sample_weight, check_finite
            As in :meth:`loss`: the data the model was trained on.
        prior_precision : float > 0, optional
            alpha; chosen by evidence maximisation when None.
        full : bool, optional
            Hold the whole covariance Sigma (P x P). The default does up to
            P = 4000 parameters (128 MB); above, only its diagonal, from the
            diagonal of J^T J (the weights' correlations ignored).

        Returns
        -------
        Laplace
            ``covariance`` (P, P) or its diagonal (P,), ``noise_variance``
            and ``prior_precision``.

        References
        ----------
        D. J. C. MacKay, "A practical Bayesian framework for backpropagation
        networks", Neural Computation 4(3), 448-472, 1992.
        """
        from crnn._laplace import FULL_MAX, fit_laplace

        check_finite = check_bool(check_finite, "check_finite")
        alpha = check_real(
            prior_precision, "prior_precision", low=0, low_open=True, allow_none=True
        )
        P = self._theta.shape[0]
        whole = P <= FULL_MAX if full is None else check_bool(full, "full")
        params, Xs, ts, s02, ws, _ = self._sequences(
            X, target, s0, sample_weight, check_finite, True
        )
        H, _, E, bad = _kernels.gauss_newton(
            params, self._size, Xs, ts, s02, self._n_threads, self._cell, ws, diagonal=not whole
        )
        self._refuse_nonfinite_list(bad)
        if ws is None:
            n = float(sum(t.size for t in ts))
        else:
            n = float(sum(np.count_nonzero(w) for w in ws))
        if n == 0:
            raise ValueError("target must hold at least one value to estimate the noise from")
        self.laplace_ = fit_laplace(self, H, float(E.sum()), n, alpha)
        return self.laplace_

    # ------------------------------------------------------------------ training

    def fit(
        self,
        X: ArrayLike,
        target: ArrayLike,
        *,
        epochs: int = 200,
        optimizer: OptimizerName = "adam",
        lr: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = False,
        batch_size: int | None = None,
        shuffle: bool = True,
        method: Method = "bptt",
        clip: float | None = None,
        truncate: int | None = None,
        tol: float = 1e-6,
        n_iter_no_change: int = 20,
        validation_fraction: float | None = None,
        validation_data: tuple[ArrayLike, ArrayLike]
        | tuple[ArrayLike, ArrayLike, ArrayLike]
        | None = None,
        g: float = 1.0,
        seed: Seed = None,
        warm_start: bool = False,
        verbose: bool = False,
        sample_weight: ArrayLike | None = None,
        weight_decay: float = 0.0,
    ) -> Self:
        """Train the weights on sequences by gradient descent on the exact gradient.

        Each update uses the exact gradient of E (see :meth:`gradient`) of a
        mini-batch of sequences, divided by the number of predicted values
        (N T m; with ``sample_weight``, by the sum of the mini-batch's
        weights), so that the learning rate does not depend on how much data
        there is, plus the gradient of the weight decay's penalty.

        Parameters
        ----------
        X : array_like of shape (T, n) or (N, T, n)
            Input sequences.
        target : array_like of shape (T, m) or (N, T, m)
            Targets.
        epochs : int, default 200
            The most passes over the data.
        optimizer : {"adam", "sgd", "adagrad", "lm"}, default "adam"
            "lm" is Levenberg-Marquardt on the full batch (an epoch is one
            iteration; see the README and ``crnn._lm``): not with
            ``batch_size`` smaller than the data, ``truncate`` or ``clip``.
        lr : float, optional
            Learning rate; default 0.01 for "adam" and "sgd", 0.1 for
            "adagrad"; for "lm", the first damping mu, 0.001.
        momentum : float, default 0.9
            Momentum of "sgd", in [0, 1).
        nesterov : bool, default False
            Nesterov momentum for "sgd".
        batch_size : int, optional
            Sequences per update; all of them (full batch) by default.
        shuffle : bool, default True
            Shuffle the sequences before each epoch.
        method : {"bptt", "rtrl"}, default "bptt"
            How the gradient is computed (the same numbers either way).
        clip : float, optional
            Largest Euclidean norm of the gradient (of all the weights together);
            larger gradients are scaled down to it.
        truncate : int, optional
            Truncated BPTT: update after every window of this many steps,
            carrying the state from one window to the next.
        tol : float, default 1e-6
            An epoch improves when the loss (validation loss, if there is
            validation data) falls by more than tol below the best so far.
        n_iter_no_change : int, default 20
            Stop after this many epochs without improvement.
        validation_fraction : float in (0, 1), optional
            Hold out this fraction of the sequences (or, for one sequence,
            its last steps) to score each epoch; the best weights are kept.
        validation_data : (X_val, target_val) or (X_val, target_val, sample_weight_val), optional
            Held-out data to score each epoch; the best weights are kept.
        g : float, default 1.0
            Loss scale.
        seed : None, int or numpy.random.Generator
            Source of shuffling and of the validation split; the same seed,
            data and initial weights give the same numbers.
        warm_start : bool, default False
            Continue the optimizer's state, ``loss_curve_`` and ``n_iter_``
            of the previous fit. Either way, training starts from the
            current weights.
        verbose : bool, default False
            Show progress (a tqdm bar when tqdm is installed, otherwise a
            line on stderr every few epochs).
        sample_weight : array_like, optional
            Weights of the squared errors, as in :meth:`loss`: (T,), (N, T)
            or the shape of ``target``, finite, >= 0 and not all 0. A
            validation split holds out the weights of the values it holds
            out, and scores them with their weights.
        weight_decay : float, default 0.0
            Adds ``weight_decay * (|U|^2 + |W|^2 + |V|^2)`` (squared
            Frobenius norms; the biases are not decayed) to the objective
            the optimizer sees, the mean loss, with its exact gradient.

        Returns
        -------
        RNN
            The model itself, trained.

        Raises
        ------
        FloatingPointError
            If the loss, the gradient or the weights stop being finite; the
            model keeps the last finite weights.

        Notes
        -----
        After a fit the model has ``loss_curve_`` (the mean loss per
        predicted value of each epoch, measured during the epoch, without
        the penalty), ``penalty_curve_`` (the weight decay's penalty at the
        end of each epoch; without early stopping on validation data, an
        epoch improves when their sum falls),
        ``validation_scores_`` (the mean validation loss per predicted value
        of each epoch, lower is better, or None), ``best_loss_``,
        ``best_validation_score_`` and ``n_iter_`` (epochs run).
        """
        from crnn._fit import fit

        return fit(
            self,
            X,
            target,
            epochs=epochs,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            batch_size=batch_size,
            shuffle=shuffle,
            method=method,
            clip=clip,
            truncate=truncate,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            validation_fraction=validation_fraction,
            validation_data=validation_data,
            g=g,
            seed=seed,
            warm_start=warm_start,
            verbose=verbose,
            sample_weight=sample_weight,
            weight_decay=weight_decay,
        )

    def partial_fit(
        self,
        X: ArrayLike,
        target: ArrayLike,
        *,
        g: float = 1.0,
        method: Method = "bptt",
        clip: float | None = None,
        optimizer: OptimizerName = "adam",
        lr: float | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> Self:
        """Make one update on one mini-batch, continuing the previous fit.

        The optimizer (and its state) of the previous :meth:`fit` or
        ``partial_fit`` is reused; ``optimizer`` and ``lr`` are used only when
        there is none yet. ``sample_weight`` as in :meth:`fit`.

        Returns
        -------
        RNN
            The model itself.
        """
        from crnn._fit import partial_fit

        return partial_fit(
            self,
            X,
            target,
            g=g,
            method=method,
            clip=clip,
            optimizer=optimizer,
            lr=lr,
            sample_weight=sample_weight,
        )

    # ------------------------------------------------------------------ stateful use

    @property
    def state(self) -> FloatArray | None:
        """The state :meth:`step` continues from: None (zeros), (d,) or (N, d)."""
        state: FloatArray | None = getattr(self, "_state", None)
        return state

    @state.setter
    def state(self, value: ArrayLike | None) -> None:
        if value is None:
            self._state = None
            return
        arr = as_float_array(value, "state", self._dtype, (1, 2))
        check_shape(arr, "state", (*arr.shape[:-1], self.hidden_size))
        self._state = arr.copy()

    def reset(self) -> None:
        """Forget the state of :meth:`step` (back to zeros)."""
        self._state = None

    def step(self, x: ArrayLike) -> FloatArray:
        """Advance one time step from :attr:`state` and return the output.

        Parameters
        ----------
        x : array_like of shape (n,) or (N, n)
            The input of this step, for one sequence or N at once.

        Returns
        -------
        y : ndarray of shape (m,) or (N, m)
            The output; :attr:`state` becomes the new state.

        Notes
        -----
        A model's state is not shared safely between threads: give each
        thread its own model (``copy.deepcopy``) for stateful use.
        """
        y = self._step_fast(x)
        return self._step_checked(x) if y is None else y

    def _step_fast(self, x: ArrayLike) -> FloatArray | None:
        """``step`` when x, the state and the weights are as the kernel takes them; else None.

        Then nothing needs converting and every check is of attributes; the
        values are counted by the kernel. None also when the kernel counted
        a NaN or an infinity: ``_step_checked`` then refuses it by name, in
        the order of the complete checks.
        """
        dt = self._dtype
        if not (
            type(x) is np.ndarray and (x.dtype is dt or x.dtype == dt) and x.flags.c_contiguous
        ):
            return None
        theta = self._kernel_weights()
        if theta is None:
            return None
        size = self._size
        state = self._state
        if x.ndim == 1:
            if x.shape[0] != size[0] or (state is not None and state.ndim != 1):
                return None
            s = np.zeros((1, size[1]), dt) if state is None else state[np.newaxis]
            s_new, y, bad = _kernels.step(
                theta, size, x[np.newaxis], s, self._n_threads, self._cell
            )
            if bad:
                return None
            self._state = s_new[0]
            return y[0]  # type: ignore[no-any-return]
        if x.ndim != 2:
            return None
        N = x.shape[0]
        if N == 0 or x.shape[1] != size[0]:
            return None
        if state is not None and (state.ndim != 2 or state.shape[0] != N):
            return None
        s = np.zeros((N, size[1]), dt) if state is None else state
        s_new, y, bad = _kernels.step(theta, size, x, s, self._n_threads, self._cell)
        if bad:
            return None
        self._state = s_new
        return y

    def _step_checked(self, x: ArrayLike) -> FloatArray:
        """``step`` with the complete checks, converting x and refusing bad values by name."""
        x = as_float_array(x, "x", self._dtype, (1, 2))
        check_shape(x, "x", (*x.shape[:-1], self.input_size))
        state = self.state
        if state is not None and state.ndim != x.ndim:
            raise ValueError(
                f"x has shape {x.shape} but the state has shape {state.shape}; "
                "call reset() before switching between one sequence and a batch"
            )
        if state is not None and x.ndim == 2 and state.shape[0] != x.shape[0]:
            raise ValueError(f"x holds {x.shape[0]} sequences, the state {state.shape[0]}")
        theta = self._kernel_weights()
        if theta is None:
            theta = self._weights(True)
        x2 = x if x.ndim == 2 else x[np.newaxis]
        N, d = x2.shape[0], self.hidden_size
        s = np.zeros((N, d), self._dtype) if state is None else state.reshape(N, d)
        s_new, y, bad = _kernels.step(theta, self._size, x2, s, self._n_threads, self._cell)
        self._refuse_nonfinite(bad, x[..., np.newaxis, :], None, state, False)
        self._state = s_new if x.ndim == 2 else s_new[0]
        return y if x.ndim == 2 else y[0]

    @overload
    def generate(
        self,
        n_steps: int,
        warmup: ArrayLike | None = None,
        *,
        s0: ArrayLike | None = None,
        x0: ArrayLike | None = None,
        return_std: Literal[False] = False,
    ) -> FloatArray: ...
    @overload
    def generate(
        self,
        n_steps: int,
        warmup: ArrayLike | None = None,
        *,
        s0: ArrayLike | None = None,
        x0: ArrayLike | None = None,
        return_std: Literal[True],
    ) -> tuple[FloatArray, FloatArray]: ...
    @overload
    def generate(
        self,
        n_steps: int,
        warmup: ArrayLike | None = None,
        *,
        s0: ArrayLike | None = None,
        x0: ArrayLike | None = None,
        return_std: bool,
    ) -> FloatArray | tuple[FloatArray, FloatArray]: ...
    def generate(
        self,
        n_steps: int,
        warmup: ArrayLike | None = None,
        *,
        s0: ArrayLike | None = None,
        x0: ArrayLike | None = None,
        return_std: bool = False,
    ) -> FloatArray | tuple[FloatArray, FloatArray]:
        """Forecast in closed loop: each output is fed back as the next input.

        Parameters
        ----------
        n_steps : int
            Number of steps to generate.
        warmup : array_like of shape (T, n) or (N, T, n), optional
            Observed inputs to run first; the last output they give is the
            first generated value.
        s0 : array_like of shape (d,) or (N, d), optional
            Initial state (of the warm-up, if any).
        x0 : array_like of shape (n,) or (N, n), optional
            The first input when there is no warm-up.
        return_std : bool, default False
            Also return each generated value's predictive standard
            deviation, from the Laplace approximation :meth:`laplace` made,
            linearised through the closed loop: the weights' uncertainty and
            each step's noise, which is fed back with its output, carried
            forward to first order (see :meth:`laplace`).

        Returns
        -------
        ndarray of shape (n_steps, m) or (N, n_steps, m)
            The generated outputs.
        std : ndarray of the same shape
            Only when ``return_std`` is True: their standard deviations, as
            :meth:`predict` returns them.
        """
        return_std = check_bool(return_std, "return_std")
        if return_std:
            from crnn._laplace import check_laplace

            post = check_laplace(getattr(self, "laplace_", None), self._theta.shape[0])
        if self.output_size != self.input_size:
            raise ValueError(
                "generate feeds outputs back as inputs, so output_size must equal "
                f"input_size; this model has {self.output_size} and {self.input_size}"
            )
        n_steps = check_size(n_steps, "n_steps")
        if (warmup is None) == (x0 is None):
            raise ValueError("give exactly one of warmup (observed inputs) and x0 (a first input)")
        if warmup is not None:
            warmup = as_float_array(warmup, "warmup", self._dtype, (2, 3))
            check_shape(warmup, "warmup", (*warmup.shape[:-1], self.input_size))
            if warmup.shape[-2] == 0:
                raise ValueError(
                    f"warmup must have at least one time step, got shape {warmup.shape} "
                    "(give x0 instead to start from an input)"
                )
            lead = warmup.shape[:-2]
        else:
            x = as_float_array(x0, "x0", self._dtype, (1, 2))
            check_shape(x, "x0", (*x.shape[:-1], self.input_size))
            lead = x.shape[:-1]
        # the result is allocated first: a count that cannot fit is refused at once
        shape = (*lead, n_steps, self.output_size)
        check_alloc(shape, self._dtype, "the generated outputs (n_steps)")
        out = np.empty(shape, dtype=self._dtype)
        state = s0
        if warmup is not None:
            # the observed steps but the last; the last one is the closed loop's
            # first input, so that its first output is the warm-up's last
            _, _, state = self.forward(warmup[..., :-1, :], s0, return_state=True)
            x = warmup[..., -1, :]
        X3, _, s02, batched, _ = self._data(x[..., np.newaxis, :], None, state, True, False)
        out3 = out if batched else out[np.newaxis]
        # one compiled call runs every step (no Python per step)
        _kernels.generate(
            self._weights(check_finite=True),
            self._size,
            np.ascontiguousarray(X3[:, 0]),
            s02,
            out3,
            self._n_threads,
            self._cell,
        )
        if not return_std:
            return out
        from crnn._laplace import closed_loop_std

        x_first = np.ascontiguousarray(X3[:, 0])
        if warmup is not None:  # the state's sensitivities after the observed steps
            W3 = warmup[np.newaxis] if warmup.ndim == 2 else warmup
            s00 = self._data(W3[:, :1], None, s0, True, False)[2]
            s_T, sens, _ = _kernels.sensitivities(
                self._theta,
                self._size,
                np.ascontiguousarray(W3[:, :-1]),
                s00,
                self._n_threads,
                self._cell,
            )
        else:
            s_T, sens = _kernels.jacobian_start(self._theta, self._size, s02)
        std = closed_loop_std(self, post, x_first, s_T, sens, n_steps).astype(self._dtype)
        return out, std if batched else std[0]

    # ------------------------------------------------------------------ save and load
    # (crnn._io holds the file format and knows no model class: the model's
    # side of it is here, in _to_file and _from_file)

    #: Optional per-feature arrays saved with the model: the scaling the
    #: ``crnn`` command applies to data (``(x - data_mean_) / data_scale_``).
    _SCALING = ("data_mean_", "data_scale_")

    #: An option saved only when set: the ``crnn`` command's training was
    #: stopped by Ctrl-C after this many epochs (``interrupted_after_epoch_``).
    _INTERRUPTED = "interrupted_after_epoch"

    #: The weights' posterior (:meth:`laplace`): an array and two options.
    _LAPLACE = ("laplace_covariance", "laplace_noise_variance", "laplace_prior_precision")

    def _to_file(self) -> tuple[dict[str, FloatArray], dict[str, Any]]:
        """Return (arrays, options): what a file holds of the model (arrays not copied)."""
        arrays = self.parameters()
        for name in self._SCALING:
            value = getattr(self, name, None)
            if value is not None:
                arrays[name] = np.asarray(value, dtype=self._dtype)
        options: dict[str, Any] = {"n_threads": self.n_threads}
        # the cell only when it is not Elman's, so that the files of Elman
        # models stay readable by crnn versions that had no other cell, and
        # those of other cells are refused by them, not misread
        if self._activation != "tanh":
            options["activation"] = self._activation
        if self._leak != 1:
            options["leak"] = self._leak
        interrupted = getattr(self, self._INTERRUPTED + "_", None)
        if interrupted is not None:
            options[self._INTERRUPTED] = int(interrupted)
        post = getattr(self, "laplace_", None)
        if post is not None:  # the weights' posterior (RNN.laplace)
            arrays["laplace_covariance"] = post.covariance.astype(self._dtype)
            options["laplace_noise_variance"] = post.noise_variance
            options["laplace_prior_precision"] = post.prior_precision
        return arrays, options

    @classmethod
    def _from_file(
        cls, arrays: Mapping[str, FloatArray], options: Mapping[str, Any], dtype: np.dtype[Any]
    ) -> Self:
        """Rebuild a model from what :meth:`_to_file` gave (checked by crnn._io)."""
        unknown = sorted(set(arrays) - {"U", "W", "V", "b", "c", *cls._SCALING, *cls._LAPLACE})
        if unknown:
            raise ValueError(f"it holds arrays {unknown} that this crnn cannot restore")
        known = {"n_threads", "activation", "leak", cls._INTERRUPTED, *cls._LAPLACE[1:]}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"it holds options {unknown} that this crnn cannot restore")
        if ("b" in arrays) != ("c" in arrays):
            raise ValueError("it holds only one of the biases b and c")
        model = cls.from_weights(
            arrays["U"],
            arrays["W"],
            arrays["V"],
            b=arrays.get("b"),
            c=arrays.get("c"),
            dtype=dtype,
            n_threads=options.get("n_threads"),
            activation=options.get("activation", "tanh"),
            leak=options.get("leak", 1.0),
        )
        for name in cls._SCALING:
            if name in arrays:
                check_shape(arrays[name], name, (model.input_size,))
                setattr(model, name, arrays[name])
        if cls._INTERRUPTED in options:
            value = options[cls._INTERRUPTED]
            setattr(model, cls._INTERRUPTED + "_", check_int(value, cls._INTERRUPTED, low=1))
        if "laplace_covariance" in arrays:
            from crnn._laplace import from_file

            model.laplace_ = from_file(
                arrays["laplace_covariance"],
                options.get("laplace_noise_variance"),
                options.get("laplace_prior_precision"),
                model._theta.shape[0],
            )
        return model

    def save(self, path: PathLike, *, overwrite: bool = True) -> str:
        """Save the model to one ``.npz`` file, atomically: see :func:`crnn.save`.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write, exactly as given (no suffix is added).
        overwrite : bool, default True
            False: raise FileExistsError if path exists when the file is put
            in place, never replacing it.

        Returns
        -------
        str
            The path written.
        """
        from crnn import _io

        overwrite = check_bool(overwrite, "overwrite")
        arrays, options = self._to_file()
        return _io.write(path, self._size, self._dtype, arrays, options, replace=overwrite)

    @classmethod
    def load(cls, path: PathLike) -> Self:
        """Load a model saved by :meth:`save` or :func:`crnn.save`: see :func:`crnn.load`.

        Parameters
        ----------
        path : str or os.PathLike
            The file, exactly as given.

        Returns
        -------
        RNN
            A model (of this class) that predicts bit for bit what the saved one did.
        """
        from crnn import _io

        def build(contents: _io.Contents) -> RNN:
            try:
                model = cls._from_file(
                    dict(contents.arrays), dict(contents.options), contents.dtype
                )
            except (TypeError, ValueError) as exc:
                raise _io.BadFile(f"the saved model cannot be rebuilt: {exc}") from exc
            # refuse a model that does not hold exactly what the file holds
            sizes = (model.input_size, model.hidden_size, model.output_size)
            if sizes != contents.sizes or model.dtype != contents.dtype:
                raise _io.BadFile(
                    f"the rebuilt model has sizes {sizes} and dtype {model.dtype}, the file "
                    f"{contents.sizes} and {contents.dtype}"
                )
            held = model._to_file()[0]
            if set(held) != set(contents.arrays) or any(
                not np.array_equal(np.asarray(held[k]), v) for k, v in contents.arrays.items()
            ):
                raise _io.BadFile("the rebuilt model does not hold the saved arrays")
            return model

        return _io.read(path, build)  # type: ignore[return-value]
