#!/usr/bin/env bash
# JMH micro-benchmarks of the repository's hot paths; results to bench/results-jmh.md.
#   bench/jmh.sh            (builds benchmarks/target/benchmarks.jar first if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
jar=benchmarks/target/benchmarks.jar
[ -f "$jar" ] || ./mvnw -B -q -pl benchmarks -am package -DskipTests
out=bench/results-jmh.md
# libgranule-native from the engine's build, as bin/granule loads it from the bundle: libcrypto's
# SHA-256 and the vendored BLAKE3 (without it the hashes are the JDK's and commons-codec's)
native=engine/target/classes/native/linux-x86_64
[ -f "$native/libgranule-native.so" ] || ./mvnw -B -q -pl engine package -DskipTests
java -Djava.library.path="$native" -jar "$jar" -rf text -rff /tmp/granule-jmh.txt "$@" \
  > /tmp/granule-jmh.log
impl=$(java -Djava.library.path="$native" -cp "$jar" io.granule.benchmarks.Implementations 2>/dev/null)
{
  echo "# JMH micro-benchmarks"
  echo
  echo "Command: \`bench/jmh.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(java -version 2>&1 | head -1)."
  echo "Throughput per second; for the 1 MiB chunk benchmarks ops/s = MiB/s; fastCdc64MiB: × 64 MiB;"
  echo "packWriter16MiB: × 16 MiB; index lookups: lookups/s (1 million chunks in the index)."
  echo "Hashes: $impl."
  echo
  echo '```'
  cat /tmp/granule-jmh.txt
  echo '```'
} > "$out"
cat "$out"
