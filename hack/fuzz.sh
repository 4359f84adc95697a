#!/usr/bin/env bash
# Fuzz the parsers (tests/fuzz, hypothesis). Without options: a long, random run of every target with
# FUZZ_EXAMPLES examples each (default 20000); failing examples are kept in .hypothesis/ and replayed first by
# the next run. --ci runs the bounded, derandomized profile hack/test.sh runs (about 40 s). Prints, per
# target, the examples run and the outcome (passed, failed, or xfailed: a known bug reported to its owner),
# then the total; exits non-zero when a target failed.
#
# Usage: hack/fuzz.sh [--ci] [--examples N] [PYTEST_ARGS...]
#   --ci          the bounded CI profile instead of the long one
#   --examples N  examples per target for the long profile (default: $FUZZ_EXAMPLES or 20000)
#   PYTEST_ARGS   passed on, e.g. tests/fuzz/test_fuzz_streaming.py or -k spdy
# Environment: VENV [<repo>/.venv/bin] (the virtualenv's bin directory holding python with crio installed).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
VENV=${VENV:-$REPO_ROOT/.venv/bin}

profile=long
examples=${FUZZ_EXAMPLES:-20000}
args=()
while (($#)); do
    case $1 in
        --ci) profile=ci ;;
        --examples)
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || {
                echo "fuzz: --examples needs a positive number" >&2
                exit 2
            }
            examples=$2
            shift
            ;;
        -h | --help)
            sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *) args+=("$1") ;;
    esac
    shift
done
((${#args[@]})) || args=(tests/fuzz)

start=$SECONDS
# -o timeout=0: a long run takes as long as it takes (pyproject's per-test timeout is for the other suites).
rc=0
HYPOTHESIS_PROFILE=$profile FUZZ_EXAMPLES=$examples PYTHONPATH=$REPO_ROOT \
    "$VENV/python" -m pytest -q -o timeout=0 "${args[@]}" || rc=$?
echo "fuzz: profile $profile, $((SECONDS - start)) s, pytest exit code $rc"
exit "$rc"
