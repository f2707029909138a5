# SPDX-License-Identifier: BSD-3-Clause
"""The version of crnn: the one place it is written (the build reads it from here)."""

__version__ = "0.1.0"
