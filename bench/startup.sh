#!/usr/bin/env bash
# CLI start-up time: wall-clock and CPU time (user + sys, all threads) of `granule --version` and
# `granule plugins`, N runs each, after one warm-up run (which extracts the bundle cache and, with
# class data sharing on, writes the CDS archive). Prints min / median / max wall ms and the median
# CPU ms, with the class-data-sharing archive (the default) and without it (GRANULE_CDS=off), and
# with the JVM's full JIT instead of the quick compiler bin/granule chooses (GRANULE_JIT=full).
# Usage: bench/startup.sh [N]   (needs runtime/target/granule.jar: ./mvnw -q package -DskipTests)
# The machine's load average is printed before and after: on a shared machine, compare runs made
# under similar load (the CPU column is less sensitive to it than the wall-clock ones).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
TIMEFORMAT='%R %U %S'
measure() {
  local label="$1"; shift
  bin/granule "$@" >/dev/null 2>&1
  local walls=() cpus=() line real user sys
  for _ in $(seq "$n"); do
    line=$({ time bin/granule "$@" >/dev/null 2>&1; } 2>&1)
    read -r real user sys <<<"$line"
    walls+=("$(awk -v r="$real" 'BEGIN { printf "%d", r * 1000 }')")
    cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }')")
  done
  local cpu_median
  cpu_median=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  printf '%s\n' "${walls[@]}" | sort -n | awk -v label="$label" -v n="$n" -v cpu="$cpu_median" '
    { a[NR] = $1 }
    END { printf "| %-37s | %3d | %5d | %6d | %5d | %6d |\n", label, n, a[1], a[int((n + 1) / 2)], a[n], cpu }'
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| command                               | runs | min ms | median ms | max ms | median CPU ms |"
echo "|---------------------------------------|-----:|-------:|----------:|-------:|--------------:|"
measure "granule --version" --version
measure "granule plugins" plugins
GRANULE_CDS=off measure "granule --version (GRANULE_CDS=off)" --version
GRANULE_CDS=off measure "granule plugins (GRANULE_CDS=off)" plugins
GRANULE_JIT=full measure "granule --version (GRANULE_JIT=full)" --version
GRANULE_JIT=full measure "granule plugins (GRANULE_JIT=full)" plugins
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
