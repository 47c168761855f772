#!/usr/bin/env bash
# Large-disk benchmark: peak memory and time of Granule's backup, second backup, full data check
# and restore of sparse raw disks of each SIZE (default 2T and 15T, ext4's largest file) holding 600 MiB of VM-like data in three
# regions (at the start, the middle and the end), on a plain and on an encrypted repository. The
# issue's target: peak RSS under 512 MiB whatever the disk size; what grows with a disk is its fixed
# index (32 bytes per chunk position: 128 MiB for 2 TiB at 512 KiB chunks).
#
#   bench/large-disk.sh [SIZES]   (sizes truncate(1) takes; results go to bench/results-large-disk.md)
#
# Needs runtime/target/granule.jar, GNU time, root to drop the page cache before each step, and
# ~2 GiB free in $BENCH_DIR (default /var/tmp): the disk and the restored one are sparse files.
# The restored disk's regions are compared with the original's (cmp) and its size checked.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
sizes="${1:-2T 15T}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-large"
out="bench/results-large-disk.md"
granule_memory_bench_setup
export GRANULE_PASSWORD=bench

region=$((200 << 20))
java bench/GenImage.java create "$work/data.img" 600 42 > /dev/null

step() { # NAME CMD...: prints "wall s, RSS MB" of one run (measure, bench/common.sh)
  local m
  m=$(measure "$@")
  printf '%s s, %s MB' "${m% *}" "${m#* }"
}

rows=""
for size in $sizes; do
rm -f "$work/disk.img"
truncate -s "$size" "$work/disk.img"
bytes=$(stat -c %s "$work/disk.img")
offsets="0 $(( bytes / 2 / 4096 * 4096 )) $(( bytes - region - 12345 * 4096 ))"
i=0
for off in $offsets; do
  dd if="$work/data.img" of="$work/disk.img" bs=1M skip=$((i * 200)) count=200 \
    seek="$off" oflag=seek_bytes conv=notrunc status=none
  i=$((i + 1))
done
for kind in plain encrypted; do
  repo="$work/repo-$kind"
  rm -rf "$repo"
  g=(bin/granule)
  if [ "$kind" = plain ]; then
    g=(env -u GRANULE_PASSWORD bin/granule) # a password given for an unencrypted one is refused
    "${g[@]}" init --repo "$repo" --insecure-no-encryption > /dev/null
  else
    "${g[@]}" init --repo "$repo" > /dev/null
  fi
  b1=$(step backup "${g[@]}" backup --repo "$repo" --disk vm="$work/disk.img" --no-progress)
  b2=$(step backup2 "${g[@]}" backup --repo "$repo" --disk vm="$work/disk.img" --no-progress)
  v=$(step verify "${g[@]}" verify --read-data --repo "$repo")
  rm -f "$work/restored.img"
  r=$(step restore "${g[@]}" restore disk latest:vm --repo "$repo" --to "$work/restored.img")
  [ "$(stat -c %s "$work/restored.img")" = "$bytes" ] || { echo "restored size differs" >&2; exit 1; }
  for off in $offsets; do
    cmp -n "$region" -i "$off:$off" "$work/disk.img" "$work/restored.img" \
      || { echo "restored data differs at $off" >&2; exit 1; }
  done
  rm -f "$work/restored.img"
  rows="$rows| $size | $kind | $b1 | $b2 | $v | $r |"$'\n'
  echo "$size $kind: backup $b1; 2nd backup $b2; verify --read-data $v; restore $r" >&2
done
done

{
  echo "# Large disks: sparse raw disks of $sizes, 600 MiB of data each"
  echo
  echo "\`bench/large-disk.sh '$sizes'\` on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD)," \
    "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
  echo "Each step after \`sync\` and an empty page cache; wall time and peak RSS (GNU time)."
  echo "Data: three 200 MiB regions of bench/GenImage.java's VM-like image: at the start, the middle"
  echo "and ending 48 MiB before the end;"
  echo "the restored disk's regions compared (cmp) and its size checked."
  echo
  echo "| disk | repository | backup | 2nd backup | verify --read-data | restore |"
  echo "|---|---|---|---|---|---|"
  printf '%s' "$rows"
} > "$out"
cat "$out"
