#!/usr/bin/env bash
# Run a subset of crnn's tests under valgrind's memcheck, against the crnn
# installed for PYTHON (default: python), and fail on any memory error (an
# invalid read or write, a use of uninitialised memory, a bad free) or any
# definite leak that is not CPython's or numpy's own (tools/valgrind-python.supp).
#
#   bash tools/valgrind.sh                 # the default subset, a few minutes
#   bash tools/valgrind.sh tests/test_online.py -k clip    # any pytest arguments
#   VALGRIND_LOG=memcheck.log bash tools/valgrind.sh       # keep the full report
#
# PYTHONMALLOC=malloc sends Python's small allocations to malloc, where
# memcheck sees them. valgrind runs the program on one CPU and emulates at
# most AVX2, so the AVX-512 kernels are not run (numpy's CPU detection, and
# so crnn's dispatch, sees no AVX-512 under valgrind); tests/test_kernels.py
# runs every variant that is left (baseline and AVX2) in the same process.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
command -v valgrind > /dev/null || { echo "valgrind is not installed"; exit 2; }
if (( $# == 0 )); then
  set -- tests/test_core_vs_reference.py tests/test_kernels.py tests/test_gradients.py \
    tests/test_online.py tests/test_stateful.py
fi
if [[ -n "${VALGRIND_LOG:-}" ]]; then  # keep valgrind's full report there
  log=$VALGRIND_LOG
else
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
fi
echo "valgrind $(valgrind --version | sed 's/valgrind-//'), $("$python" --version), tests: $*"
status=0
PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=99 \
  --suppressions=tools/valgrind-python.supp --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --num-callers=40 --log-file="$log" \
  "$python" -X faulthandler -m pytest -q -p no:cacheprovider "$@" || status=$?
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" "$log" | sed 's/^==[0-9]*== //'
if (( status == 99 )); then
  echo "memcheck found errors:"
  grep -v "^==[0-9]*== *$" "$log" | head -200
elif (( status != 0 )); then
  echo "the tests failed (exit status $status) under valgrind"
  tail -50 "$log"
fi
exit "$status"
