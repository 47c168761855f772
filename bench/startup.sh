#!/usr/bin/env bash
# CLI start-up time: wall-clock of `granule --version` and `granule plugins`, N runs each,
# after one warm-up run (which extracts the bundle cache). Prints min / median / max in ms.
# Usage: bench/startup.sh [N]   (needs runtime/target/granule.jar: ./mvnw -q package -DskipTests)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
measure() {
  local label="$1"; shift
  bin/granule "$@" >/dev/null 2>&1
  local times=()
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    bin/granule "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" -v n="$n" '
    { a[NR] = $1 }
    END { printf "| %-22s | %3d | %5d | %6d | %5d |\n", label, n, a[1], a[int((n + 1) / 2)], a[n] }'
}
echo "| command                | runs | min ms | median ms | max ms |"
echo "|------------------------|-----:|-------:|----------:|-------:|"
measure "granule --version" --version
measure "granule plugins" plugins
