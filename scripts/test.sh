#!/usr/bin/env bash
# The whole test suite, from a fresh machine (as root): setup, start the testbed, run
# every runner (lint, jest, pytest, the testbed smoke/lifecycle tests, Galata in chromium),
# always stop the testbed, print each runner's summary line, exit non-zero on failure.
# This is what .ci/run calls.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

bash "$REPO/scripts/setup.sh" || die "setup failed"
source "$VENV/bin/activate"
ensure_build_node

log "testbed: start"
"$REPO/testbed/testbed" start || { "$REPO/testbed/testbed" stop; die "testbed failed to start"; }
trap '"$REPO/testbed/testbed" stop >/dev/null 2>&1 || true' EXIT

RESULTS=()
FAILED=0
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/rc-tests.XXXXXX")"
export RC_TEST_LOGDIR="$LOGDIR" # the testbed tests keep their agent's log there

# run_suite NAME SUMMARY-REGEX CMD...: run one runner, keep its summary line.
run_suite() {
  local name="$1" pattern="$2"; shift 2
  log "$name: $*"
  local out="$LOGDIR/${name//[^a-zA-Z0-9]/_}.log" rc
  "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  local summary
  summary="$(grep -E "$pattern" "$out" | grep -v "^\[WebServer\]" | tail -n 2 | tr '\n' ' ' | sed 's/\x1b\[[0-9;]*m//g')"
  if [ "$rc" -ne 0 ]; then FAILED=1; RESULTS+=("FAIL  $name (exit $rc): $summary")
  else RESULTS+=("ok    $name: $summary"); fi
}

# Lint first (seconds): ESLint + Prettier + stylelint on the TypeScript/CSS/JSON, ruff on Python.
run_suite "lint" '(problems?|All checks passed|files? already formatted|error)' \
  bash -c 'npm run --silent lint:check && ruff check . && ruff format --check .'
run_suite "jest" '^(Tests|Test Suites):' npx jest --ci
run_suite "pytest server extension" '(passed|failed|error)' \
  python -m pytest -q -p no:cacheprovider tests
run_suite "pytest testbed smoke" '(passed|failed|error)' \
  python -m pytest -q -p no:cacheprovider testbed/tests/test_smoke.py testbed/tests/test_sge.py
run_suite "galata" '([0-9]+ (passed|failed|flaky|skipped))' \
  bash -c 'cd ui-tests && CI=true npx playwright test'
# Last: it stops and restarts the cluster.
run_suite "pytest testbed lifecycle" '(passed|failed|error)' \
  python -m pytest -q -p no:cacheprovider testbed/tests/test_lifecycle.py

# Why each failed runner failed, in a few lines, next to the summary: CI may keep only
# the end of this output.
failure_lines() {
  grep -E '^(FAILED|ERROR) |^\s+(Error:|TimeoutError:|Test timeout|Timed out|Expected|Received|Call log:|- waiting for|[0-9]+\) |> +[0-9]+ \|)|^\s+at .*\.(spec|test)\.ts:|^\s+● ' "$1" |
    grep -v "^\[WebServer\]" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 | head -n 16
}
echo
for result in "${RESULTS[@]}"; do
  case "$result" in FAIL*)
    name="$(sed -E 's/^FAIL +(.*) \(exit.*/\1/' <<<"$result")"
    log "why $name failed (whole log: $LOGDIR/${name//[^a-zA-Z0-9]/_}.log)"
    failure_lines "$LOGDIR/${name//[^a-zA-Z0-9]/_}.log"
  esac
done
log "summary (logs in $LOGDIR; screenshots in ui-tests/test-results)"
printf '  %s\n' "${RESULTS[@]}"
# One closing line over every runner (jest counts tests, not suites).
sum() { printf '%s\n' "${RESULTS[@]}" | sed 's/Test Suites:[^T]*//' | grep -oE "[0-9]+ $1" | awk '{n+=$1} END {print n+0}'; }
# A runner that failed without counting a failure (a crash, an INTERNALERROR, a timeout)
# still counts: the line never says "0 failed" when a runner failed.
crashed=$(printf '%s\n' "${RESULTS[@]}" | grep '^FAIL' | grep -cvE '[1-9][0-9]* failed' || true)
echo "$(sum passed) passed, $(sum failed) failed$([ "$crashed" -gt 0 ] && echo ", $crashed runner(s) failed without a count")"
exit "$FAILED"
