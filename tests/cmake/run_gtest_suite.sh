#!/usr/bin/env bash
# ctest runs every gtest suite through this: run_gtest_suite.sh <test binary> --gtest_filter=<Suite>.*
# Exit status: the binary's when it failed (a crash or a failed test), 77 when it passed but
# skipped a test (ctest reports the entry as "Skipped": SKIP_RETURN_CODE 77), else 0.
# (SKIP_REGULAR_EXPRESSION alone is not enough: ctest lets a skip match win over a failure.)
set -u
log="$(mktemp "${TMPDIR:-/tmp}/rowguard-gtest-XXXXXX")"
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  [ "$rc" -eq 77 ] && rc=1
  exit "$rc"
fi
if grep -q '^\[  SKIPPED \]' "$log"; then
  echo "run_gtest_suite.sh: passed with skipped tests (see [  SKIPPED ] above): reported as Skipped"
  exit 77
fi
if ! grep -q '^\[  PASSED  \] [1-9]' "$log"; then
  if grep -q 'YOU HAVE [0-9]* DISABLED TEST' "$log"; then
    echo "run_gtest_suite.sh: every test of the suite is DISABLED_: reported as Skipped"
    exit 77
  fi
  echo "run_gtest_suite.sh: no test ran"
  exit 1
fi
exit 0
