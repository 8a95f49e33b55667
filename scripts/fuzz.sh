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
	if ! go test "$pkg" -run "^$" -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10x 2>&1 | tail -n 3; then
		status=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort)
exit $status
