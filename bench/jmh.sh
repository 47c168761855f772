#!/usr/bin/env bash
# JMH micro-benchmarks of the repository's hot paths; results to bench/results-jmh.md.
#   bench/jmh.sh            (builds benchmarks/target/benchmarks.jar first if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
jar=benchmarks/target/benchmarks.jar
[ -f "$jar" ] || ./mvnw -B -q -pl benchmarks -am package -DskipTests
out=bench/results-jmh.md
java -jar "$jar" -rf text -rff /tmp/granule-jmh.txt "$@" > /tmp/granule-jmh.log
{
  echo "# JMH micro-benchmarks"
  echo
  echo "Command: \`bench/jmh.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(java -version 2>&1 | head -1)."
  echo "Throughput per second; for the 1 MiB chunk benchmarks ops/s = MiB/s; fastCdc64MiB: × 64 MiB;"
  echo "packWriter16MiB: × 16 MiB; index lookups: lookups/s (1 million chunks in the index)."
  echo
  echo '```'
  cat /tmp/granule-jmh.txt
  echo '```'
} > "$out"
cat "$out"
