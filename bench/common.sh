# Sourced by the benchmark scripts (from the project root).

# After the page cache was dropped: reads Granule's program files back (untimed), so that a timed
# run pays for the data it reads, not for its program: --version, then what --version leaves cold:
# the class-data-sharing archives of this build (one per command word), the extracted bundles
# (other commands load classes --version does not) and the JDK's module image.
granule_program_cached() {
  bin/granule --version > /dev/null
  find "${XDG_CACHE_HOME:-$HOME/.cache}/granule/cds" -name '*.jsa' -newer runtime/target/granule.jar \
    -exec cat {} + > /dev/null 2>&1 || true
  cat "${XDG_CACHE_HOME:-$HOME/.cache}"/granule/runtime-*/*.jar > /dev/null 2>&1 || true
  cat "$(dirname "$(readlink -f "$(command -v java)")")/../lib/modules" > /dev/null 2>&1 || true
}

# Granule benchmarks of memory (large-disk.sh, many-chunks.sh): checks that the build and GNU time
# are there and makes the empty work directory $work (removed on exit).
granule_memory_bench_setup() {
  [ -f runtime/target/granule.jar ] || { echo "build first: ./mvnw -q package -DskipTests" >&2; exit 1; }
  command -v /usr/bin/time > /dev/null || { echo "missing GNU time: scripts/setup --bench" >&2; exit 1; }
  rm -rf "$work"; mkdir -p "$work"
  trap 'rm -rf "$work"' EXIT
}

# measure NAME CMD...: runs CMD once after `sync` and an empty page cache (when root), Granule's
# program files read back first (untimed); prints "WALL_SECONDS PEAK_RSS_MB" (GNU time); on a
# failure prints NAME and CMD's output and exits. Uses $work.
measure() {
  local name="$1"; shift
  sync
  [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches
  granule_program_cached
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/out" 2>&1 \
    || { echo "$name failed:" >&2; cat "$work/out" >&2; exit 1; }
  local wall kb
  read -r wall kb < "$work/time"
  echo "$wall $((kb * 1024 / 1000000))"
}
