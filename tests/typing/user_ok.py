"""Code written the way the README uses crnn: mypy --strict must accept it.

Checked by tests/test_typing.py (mypy --strict, against the installed crnn,
as a user's code is) and also run there, so that every call is a real one.
``assert_type`` pins the types mypy infers for what crnn returns.
"""

import os
import tempfile
from typing import Any

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import crnn
from crnn import datasets, reference

FloatArray = NDArray[np.floating[Any]]

# ---------------------------------------------------------------- quick start
rng = np.random.default_rng(0)
rnn = crnn.RNN(input_size=3, hidden_size=16, output_size=2, seed=0)
X = rng.normal(size=(8, 20, 3))
target = rng.normal(size=(8, 20, 2))

S, Y = rnn.forward(X)
assert_type(S, FloatArray)
E = rnn.loss(X, target, g=0.5)
assert_type(E, float)
G = rnn.gradient(X, target, g=0.5)
H = rnn.gradient(X, target, g=0.5, method="rtrl")
assert_type(G, crnn.Gradient)
assert_type(H.U, FloatArray)
assert_type(G.b, FloatArray | None)
loss: float = G.loss
print(G.U.shape, G.W.shape, G.V.shape, G.s0.shape, loss, H.method)

# nested lists and other array_like inputs are accepted
Y1 = rnn.predict([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
assert_type(Y1, FloatArray)

# return_state: the overloads give a pair or a triple
S2, Y2, state = rnn.forward(X, return_state=True)
assert_type(state, FloatArray)
Y3, state3 = rnn.predict(X[:, :5], state, return_state=True)
assert_type(Y3, FloatArray)
flag: bool = bool(rng.integers(2))
out = rnn.forward(X, return_state=flag)  # a bool known only at run time: either tuple
assert_type(out, tuple[FloatArray, FloatArray] | tuple[FloatArray, FloatArray, FloatArray])

# the model's options, and its weights (assigned from any array_like)
rnn32 = crnn.RNN(2, 4, dtype=np.float32, init="orthogonal", spectral_radius=0.9, n_threads=1)
assert_type(rnn32.dtype, np.dtype[Any])
rnn32.W = np.eye(4)
rnn32.U = [[0.1, 0.2]] * 4
params: dict[str, FloatArray] = rnn32.parameters()
rnn32.set_parameters({"V": np.zeros((2, 4))})


def my_init(
    shape: tuple[int, int], fan_in: int, fan_out: int, rng: np.random.Generator
) -> FloatArray:
    """A custom initialiser: init(shape, fan_in, fan_out, rng) returns one array."""
    return rng.normal(scale=0.1, size=shape)


custom = crnn.RNN(2, 4, init=my_init, seed=np.random.default_rng(1))
same = crnn.RNN.from_weights(custom.U, custom.W, custom.V, dtype=np.float64)
assert_type(same, crnn.RNN)
assert_type(same.b, FloatArray | None)
sizes: tuple[int, int, int] = (same.input_size, same.hidden_size, same.output_size)

# ---------------------------------------------------------------- training
series = datasets.mackey_glass(400, subsample=3.0)
assert_type(series, FloatArray)
train = datasets.windows(series[:300], 41, step=25)
Xw, tw = train[:, :-1], train[:, 1:]

model = crnn.RNN(1, 8, seed=0)
fitted = model.fit(Xw, tw, epochs=3, batch_size=4, validation_fraction=0.25, seed=0)
assert_type(fitted, crnn.RNN)
curve: list[float] = model.loss_curve_
scores: list[float] | None = model.validation_scores_
best: float | None = model.best_validation_score_
epochs_run: int = model.n_iter_
print(curve[-1], scores, best, epochs_run)

biased = crnn.RNN(1, 8, bias=True, init="orthogonal", spectral_radius=0.9, seed=0)
biased.fit(Xw, tw + 5.0, epochs=2, seed=0)
Gb = biased.gradient(Xw, tw + 5.0)
print(Gb.b, Gb.c)
model.fit(
    Xw,
    tw,
    epochs=2,
    optimizer="sgd",
    lr=0.01,
    momentum=0.5,
    nesterov=True,
    shuffle=False,
    method="rtrl",
    clip=1.0,
    truncate=10,
    tol=0.0,
    n_iter_no_change=5,
    validation_data=(Xw[:2], tw[:2]),
    g=1.0,
    warm_start=True,
    verbose=False,
)
model.partial_fit(Xw, tw, optimizer="adagrad", lr=0.1)

# ---------------------------------------------------------------- online, stateful, forecasting
stream = datasets.mackey_glass(60, subsample=3.0)
online = crnn.OnlineRTRL(model, lr=0.005, clip=1.0)
y = online.step(stream[0], stream[1])
Yo = online.learn(stream[1:-1], stream[2:])
assert_type(Yo, FloatArray)
gsum = online.gradient_sum_
assert_type(gsum, crnn.Gradient)
online.reset()
online.lr = 0.0
online_state: FloatArray = online.state

model.reset()
y1 = model.step(stream[0])
assert_type(model.state, FloatArray | None)
model.state = None
forecast = model.generate(10, stream[:20])
assert_type(forecast, FloatArray)
forecast0 = model.generate(5, x0=stream[0], s0=np.zeros(8))

# ---------------------------------------------------------------- save and load
path = os.path.join(tempfile.mkdtemp(), "model.npz")
written: str = crnn.save(model, path)
loaded = crnn.load(path)
assert_type(loaded, crnn.RNN)
model.save(path, overwrite=True)
again = crnn.RNN.load(path)
assert_type(again, crnn.RNN)

# ---------------------------------------------------------------- datasets and the oracle
waves = datasets.sine_waves(4, 30, frequencies=(0.05, 0.1), phases=0.0, noise=0.01, seed=0)
Xs, ts = datasets.next_step(waves)
a, b, c, d = datasets.train_test_split(Xs, ts, test_fraction=0.25)
Sr, Yr = reference.forward(model.U, model.W, model.V, stream[:5])
grads = reference.gradient_bptt(model.U, model.W, model.V, stream[:5], stream[1:6])
ref_loss: float = reference.loss(model.U, model.W, model.V, stream[:5], stream[1:6])
print(crnn.__version__, len(Sr), grads["loss"], ref_loss, a.shape, d.shape)
