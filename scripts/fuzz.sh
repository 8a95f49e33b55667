#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each
# (FUZZTIME, default 10s). Usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-10s}}
status=0
while IFS=: read -r file _ line; do
	pkg=./$(dirname "$file")
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	echo "fuzz: $pkg $name for $fuzztime"
	run() { go test "$pkg" -run "^$" -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10x 2>&1; }
	if out=$(run); then
		tail -n 3 <<<"$out"
		continue
	fi
	# The whole output of a failure, so that its cause can be read.
	echo "$out"
	if grep -q 'Failing input written to' <<<"$out"; then
		status=1
		continue
	fi
	# No failing input: the fuzzing engine itself stopped (a worker that
	# hung or died under load). Run once more; a second failure counts.
	echo "fuzz: $pkg $name: no failing input was found; running it again"
	if out=$(run); then
		tail -n 3 <<<"$out"
	else
		echo "$out"
		status=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort)
exit $status
