"""Mistakes a user could make, each of which mypy --strict must report.

Each line with a mistake ends with ``# E: <code> <text>``: tests/test_typing.py
checks that mypy reports on that line an error of that code whose message
contains the text, and no error anywhere else. (This file is only type
checked, never run.)
"""

import numpy as np

import crnn

rnn = crnn.RNN(2, 8, seed=0)
X = np.zeros((4, 10, 2))
target = np.zeros((4, 10, 2))

# string options are Literal types: a misspelt one is an error
rnn.fit(X, target, method="bpt")  # E: arg-type "method"
rnn.gradient(X, target, method="backprop")  # E: arg-type "method"
rnn.fit(X, target, optimizer="adamw")  # E: arg-type "optimizer"
crnn.RNN(2, 8, init="xavier")  # E: arg-type "init"
crnn.RNN(2, 8, dtype=np.int32)  # E: arg-type "dtype"

# numbers and flags of the wrong type
rnn.fit(X, target, epochs="ten")  # E: arg-type "epochs"
rnn.fit(X, target, lr="fast")  # E: arg-type "lr"
rnn.fit(X, target, validation_fraction="10%")  # E: arg-type "validation_fraction"
rnn.forward(X, return_state="yes")  # E: call-overload "forward"
crnn.RNN(2.5, 8)  # E: arg-type "Argument 1 to"
crnn.RNN(2, 8, seed="zero")  # E: arg-type "seed"
crnn.OnlineRTRL(rnn, lr="fast")  # E: arg-type "lr"
rnn.generate(10.0, X)  # E: call-overload "generate"
crnn.datasets.sine_waves(n_series=4.5)  # E: arg-type "n_series"

# wrong argument names
rnn.fit(X, target, learning_rate=0.01)  # E: call-arg "learning_rate"
crnn.RNN(input_size=2, hidden=8)  # E: call-arg "hidden"
rnn.predict(X, return_states=True)  # E: call-overload "return_states"

# arguments swapped, or of the wrong kind
crnn.save("model.npz", rnn)  # E: arg-type "save"
crnn.OnlineRTRL(X)  # E: arg-type "OnlineRTRL"

# what comes back
S, Y = rnn.forward(X, return_state=True)  # E: misc "unpack"
y: float = rnn.predict(X)  # E: assignment "float"
shape = rnn.loss(X, target).shape  # E: attr-defined "shape"

# names crnn does not have, and what cannot be assigned
crnn.fit(rnn, X, target)  # E: attr-defined "fit"
rnn.hidden_size = 4  # E: misc "read-only"
G = rnn.gradient(X, target)
G.U = np.zeros((8, 2))  # E: misc "read-only"
crnn.RNN(2, 3, activation="sigmoid")  # E: arg-type "activation"
crnn.RNN(2, 3, leak="0.5")  # E: arg-type "leak"
rnn.fit(X, target, weight_decay="high")  # E: arg-type "weight_decay"
