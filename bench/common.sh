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
