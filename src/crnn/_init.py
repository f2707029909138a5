# SPDX-License-Identifier: BSD-3-Clause
"""Weight initialisers for :class:`crnn.RNN` (the ``init=`` option)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from crnn._validation import check_real

if TYPE_CHECKING:
    from numpy.typing import DTypeLike, NDArray

    from crnn._typing import InitFunction

__all__ = ["INITS", "initial_biases", "initial_weights"]


def _uniform(
    shape: tuple[int, int], fan_in: int, fan_out: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Draw from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's rule for nn.RNN."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


def _glorot(
    shape: tuple[int, int], fan_in: int, fan_out: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Draw from U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape)


def _normal(
    shape: tuple[int, int], fan_in: int, fan_out: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Draw from N(0, 1/fan_in) (LeCun)."""
    return rng.normal(scale=1.0 / np.sqrt(fan_in), size=shape)


def _orthogonal(
    shape: tuple[int, int], fan_in: int, fan_out: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Draw a random orthogonal W (Saxe et al., 2014); Glorot for U and V."""
    if shape[0] != shape[1]:
        return _glorot(shape, fan_in, fan_out, rng)
    q, r = np.linalg.qr(rng.normal(size=shape))
    # uniform over the orthogonal group (numpy < 2.3 types the product as Any)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)  # type: ignore[no-any-return, unused-ignore]


INITS: dict[str, InitFunction] = {
    "uniform": _uniform,
    "glorot": _glorot,
    "normal": _normal,
    "orthogonal": _orthogonal,
}


def initial_weights(
    n: int,
    d: int,
    m: int,
    init: object,
    spectral_radius: object,
    rng: np.random.Generator,
    dtype: DTypeLike,
) -> list[NDArray[Any]]:
    """Return U, W, V drawn by the initialiser `init`, W scaled to a spectral radius."""
    draw: InitFunction
    if callable(init):
        draw = init
    elif isinstance(init, str) and init.lower() in INITS:
        draw = INITS[init.lower()]
    else:
        raise ValueError(f"init must be one of {sorted(INITS)} or a callable, got {init!r}")
    weights = []
    for name, shape, fan_in, fan_out in (
        ("U", (d, n), n, d),
        ("W", (d, d), d, d),
        ("V", (m, d), d, m),
    ):
        try:
            value = np.asarray(draw(shape, fan_in, fan_out, rng))
        except (TypeError, ValueError) as exc:  # a ragged list, say
            raise ValueError(
                f"init returned for {name} something that is not an array: {exc}"
            ) from None
        if value.dtype.kind not in "fiub":
            raise TypeError(
                f"init must return arrays of real numbers, got for {name} {value.dtype}"
            )
        value = value.astype(np.float64)
        if value.shape != shape or not np.isfinite(value).all():
            raise ValueError(
                f"init returned for {name} an array of shape {value.shape} (finite: "
                f"{bool(np.isfinite(value).all())}); expected finite values of shape {shape}"
            )
        weights.append(value)
    if spectral_radius is not None:
        rho = check_real(spectral_radius, "spectral_radius", low=0, low_open=True)
        current = float(np.max(np.abs(np.linalg.eigvals(weights[1]))))
        if current == 0:
            raise ValueError(
                "spectral_radius cannot be set: the initial W has no nonzero eigenvalue"
            )
        with np.errstate(over="ignore"):  # reported below
            weights[1] = weights[1] * (rho / current)
    out = []
    for name, w in zip("UWV", weights, strict=True):
        with np.errstate(over="ignore"):  # reported just below
            w = np.ascontiguousarray(w, dtype=dtype)
        if not np.isfinite(w).all():
            cause = "spectral_radius" if name == "W" and spectral_radius is not None else "init"
            raise ValueError(
                f"{cause} gives {name} values beyond the range of {np.dtype(dtype).name}"
            )
        out.append(w)
    return out


def initial_biases(
    d: int, m: int, init: object, rng: np.random.Generator, dtype: DTypeLike
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Return b (d,) and c (m,): PyTorch's U(-1/sqrt(d), 1/sqrt(d)) for "uniform", else zeros.

    ``nn.RNN`` draws its biases from U(-1/sqrt(hidden_size), ...) and
    ``nn.Linear`` from U(-1/sqrt(fan_in), ...), fan_in = d for c; the other
    initialisers (and a callable) start the biases at zero, as Keras does.
    They are drawn after U, W and V, so a seed gives the same weights with
    or without biases.
    """
    if isinstance(init, str) and init.lower() == "uniform":
        bound = 1.0 / np.sqrt(d)
        b = rng.uniform(-bound, bound, size=d)
        c = rng.uniform(-bound, bound, size=m)
    else:
        b, c = np.zeros(d), np.zeros(m)
    return np.ascontiguousarray(b, dtype=dtype), np.ascontiguousarray(c, dtype=dtype)
