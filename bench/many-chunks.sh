#!/usr/bin/env bash
# Repository-scale memory: peak RSS and time of Granule's commands on a repository of many distinct
# chunks. What grows with a repository is its chunk index (docs/formats.md, "Chunk index"): 64-byte
# slots 53-80 % full, read by the first command that needs chunk locations from the file the last
# one kept in the user's cache, or else rebuilt from the index blobs (two steps show that side by
# side), at most 80 MiB of it in memory (the rest paged through a temporary file). To reach millions of chunks on this machine's disk, the repository uses
# 4 KiB chunks: N GiB of random data (default 8) is N * 262144 distinct chunks (8 GiB: 2 Mi chunks,
# what 1 TiB of unique data makes at the default 512 KiB chunks).
#
#   bench/many-chunks.sh [GIB]   (results go to bench/results-many-chunks.md)
#
# Needs runtime/target/granule.jar, GNU time, root to drop the page cache before each step, and
# about 2.5 * GIB GiB free in $BENCH_DIR (default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
gib="${1:-8}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-many"
out="bench/results-many-chunks.md"
granule_memory_bench_setup

head -c "${gib}G" /dev/urandom > "$work/random.img"
repo="$work/repo"
bin/granule init --repo "$repo" --insecure-no-encryption --chunk-size 4K > /dev/null
# the chunk index the commands keep in the user's cache (docs/design.md) goes with the work files
repo_id=$(grep -ao '"repositoryId":"[0-9a-f]*"' "$repo/config" | cut -d'"' -f4)
trap 'rm -rf "$work" "${XDG_CACHE_HOME:-$HOME/.cache}/granule/$repo_id"' EXIT

step() { # NAME CMD...: a table row of one run (measure, bench/common.sh)
  local m
  m=$(measure "$@")
  printf '| %s | %s s | %s MB |\n' "$1" "${m% *}" "${m#* }"
}

rows=""
rows+=$(step "backup (first: every chunk new)" bin/granule backup --repo "$repo" --disk vm="$work/random.img" --no-progress)$'\n'
rows+=$(step "backup (second: every chunk known)" bin/granule backup --repo "$repo" --disk vm="$work/random.img" --no-progress)$'\n'
rows+=$(step "snapshots" bin/granule snapshots --repo "$repo")$'\n'
rows+=$(step "stats" bin/granule stats --repo "$repo")$'\n'
rows+=$(GRANULE_JAVA_OPTS=-Dgranule.index.keep=false step "stats, index read from its blobs" bin/granule stats --repo "$repo")$'\n'
rows+=$(step "verify" bin/granule verify --repo "$repo")$'\n'
rm -f "$work/restored.img"
rows+=$(step "restore" bin/granule restore disk latest:vm --repo "$repo" --to "$work/restored.img")$'\n'
cmp "$work/random.img" "$work/restored.img" || { echo "restored image differs" >&2; exit 1; }
rm -f "$work/restored.img"
# One more VM's disk, a tenth of the repository: restoring it alone needs an index of its chunks
# only (Repository.readerFor), not the repository's.
head -c "$((gib * 1024 / 10))M" /dev/urandom > "$work/small.img"
bin/granule backup --repo "$repo" --disk small="$work/small.img" --no-progress > /dev/null
rows+=$(step "restore of a disk a tenth that size" bin/granule restore disk latest:small --repo "$repo" --to "$work/restored.img")$'\n'
cmp "$work/small.img" "$work/restored.img" || { echo "restored small image differs" >&2; exit 1; }
chunks=$(bin/granule stats --repo "$repo" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')

{
  echo "# Many chunks: a repository of $chunks distinct chunks"
  echo
  echo "\`bench/many-chunks.sh $gib\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)," \
    "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
  echo "$gib GiB of random data backed up at 4 KiB chunks (as many chunks as $((gib * 128)) GiB of unique"
  echo "data at the default 512 KiB); each step after \`sync\` and an empty page cache; wall time and"
  echo "peak RSS (GNU time); the restored image compared (cmp)."
  echo
  echo "| step | wall | peak RSS |"
  echo "|---|---|---|"
  printf '%s' "$rows"
  cat <<'EOF'

The kept index (docs/design.md, "The chunk index between runs"): the second backup loads the
index from the blobs and writes it to the user's cache (192 MB); stats, the whole restore and
later backups read that file instead. "stats, index read from its blobs" is the same command with
the file turned off (-Dgranule.index.keep=false). Run by hand on the same data (8 GiB, 4 KiB
chunks, page cache dropped): a backup of it all known took 29.8 s with the file off, 25.2 s
writing it, 22.1 s reading it (runs vary by a few seconds). The restore of a disk a tenth that
size indexes its own chunks only (faster than through the whole kept index, whose lookups past
the memory budget are reads of the file), filled since ec4fcc3 from one read of the kept file
and the index blobs the small disk's backup added: by hand, 3.25-3.33 s against 3.52-3.66 s
filled from every index blob.

Earlier runs, same machine and command: fe7c7b8 with the index's memory bounded but rebuilt from
the index blobs by every command and SerialGC's default young generation (about 106 MiB; now
64 MiB); be9c390 before the memory was bounded (the whole table in a mapped file, its RSS growing
with the repository); the last column by hand, before the index was loaded lazily and sized:

| step | fe7c7b8 | be9c390 (19dc845's code) | before eee4d1f |
|---|---|---|---|
| backup (first) | 38.79 s, 453 MB | 34.89 s, 557 MB | 751 MB |
| backup (second) | 24.21 s, 267 MB | 18.67 s, 374 MB | 440 MB |
| snapshots | 1.10 s, 183 MB | 1.22 s, 183 MB | 3.9 s, 501 MB |
| stats | 3.49 s, 267 MB | 2.87 s, 436 MB | |
| verify | 12.46 s, 268 MB | 9.10 s, 628 MB | 1170 MB |
| restore | 26.48 s, 430 MB | 22.09 s, 531 MB | |
| restore of a disk a tenth that size | 3.40 s, 298 MB | 3.09 s, 301 MB | |
EOF
} > "$out"
cat "$out"
