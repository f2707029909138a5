# SPDX-License-Identifier: BSD-3-Clause
"""``python -m crnn``: the same as the ``crnn`` command."""

import sys

from crnn._cli import main

if __name__ == "__main__":
    sys.exit(main())
