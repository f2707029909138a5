#!/usr/bin/env bash
# Fuzz crnn for a bounded time with atheris (libFuzzer for Python):
#
#   bash fuzz/run.sh [SECONDS]      # default 60, split evenly between the targets
#
# fuzz_api.py drives the validation and the kernels (crnn.RNN, OnlineRTRL),
# fuzz_load.py drives crnn.load with damaged, foreign and hostile files,
# fuzz_csv.py drives the command's reader of data files (CSV). Each
# starts from its corpus in fuzz/corpus/ (kept in the repository, never
# written to: new inputs go to a scratch directory) and stops after its share
# of the time. A finding (an exception other than the documented refusals, a
# warning, a wrong number, a crash) is copied to fuzz/findings/ and the script
# exits with a non-zero status; replay one with  python fuzz/fuzz_api.py FILE.
# Needs atheris (pip install atheris) and crnn installed.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
python=${PYTHON:-python}
targets=(api load csv)
share=$(( seconds / ${#targets[@]} ))
(( share >= 1 )) || share=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  echo "== fuzz_$target.py for ${share}s (corpus: fuzz/corpus/$target)"
  # -timeout: one input taking more than 30 s is a finding (a hang);
  # -rss_limit_mb: so is one taking more than 4 GiB
  if ! "$python" "fuzz_$target.py" "$work/$target" "corpus/$target" \
      -max_total_time="$share" -timeout=30 -rss_limit_mb=4096 \
      -artifact_prefix="$work/" -print_final_stats=1 > "$work/$target.log" 2>&1; then
    status=1
  fi
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)|^#[0-9]+[[:space:]]+DONE" "$work/$target.log" || true
  if grep -qE "Uncaught Python exception|ERROR: libFuzzer|SUMMARY:" "$work/$target.log"; then
    status=1
    grep -A 30 -E "Uncaught Python exception|ERROR: libFuzzer" "$work/$target.log" | head -60
  fi
done
if compgen -G "$work/crash-*" > /dev/null || compgen -G "$work/timeout-*" > /dev/null \
    || compgen -G "$work/oom-*" > /dev/null; then
  mkdir -p findings
  cp "$work"/crash-* "$work"/timeout-* "$work"/oom-* findings/ 2>/dev/null || true
  echo "findings copied to fuzz/findings/:"; ls -l findings
  status=1
fi
if (( status == 0 )); then echo "fuzzing: no findings"; fi
exit "$status"
