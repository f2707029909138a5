import signal

import numpy as np
import pytest

# A shell without job control starts background jobs (`pytest &`, some CI
# runners) with SIGINT ignored, and Python then never raises
# KeyboardInterrupt, nor do the processes the tests start (an ignored signal
# stays ignored across exec). The tests of Ctrl-C need it delivered: give
# this process Python's own handler back, and its children the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)
