#!/usr/bin/env bash
# Slow-disk emulation: Granule's full backup and cold restore of the 4 GiB bench image with the
# disk's write rate capped (blkio throttle of the process's cgroup), against the floor that rate
# sets: the bytes each step must write durably divided by the rate.
#
#   bench/slow-disk.sh [RATE_MIB_S] [SIZE_MIB] [ROUNDS]   (default 473: the AMD EPYC machine's
#                                                          fio rate of 2026-12-03; 4096; 3)
#
# Needs root and cgroup v1's blkio controller (/sys/fs/cgroup/blkio), as on these VMs. Results go
# to bench/results-slow-disk.md. Why Granule alone: cgroup v1 throttles direct I/O only, and
# Granule writes its packs and restores with O_DIRECT, while restic and borg write through the page
# cache, whose write-back the throttle does not see; a side-by-side run would not be fair. What it
# answers: does a backup or restore keep a disk of that rate busy, or does it leave it idle while
# it decodes? (The CPU is this machine's, not the slower one's.)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
rate_mib="${1:-473}"
size_mib="${2:-4096}"
rounds="${3:-3}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-slow"
out="bench/results-slow-disk.md"
cg=/sys/fs/cgroup/blkio/granule-bench-slow
[ -f runtime/target/granule.jar ] || { echo "build first: ./mvnw -q package -DskipTests" >&2; exit 1; }
[ -d /sys/fs/cgroup/blkio ] && [ -w /proc/sys/vm/drop_caches ] \
  || { echo "needs root and cgroup v1 blkio" >&2; exit 1; }
rm -rf "$work"; mkdir -p "$work"
dev=$(stat -c '%d' "$work") # the device the work directory is on: major:minor
majmin="$((dev >> 8)):$((dev & 255))"
mkdir -p "$cg"
echo "$majmin $((rate_mib * 1048576))" > "$cg/blkio.throttle.write_bps_device"
trap 'rm -rf "$work"; rmdir "$cg" 2>/dev/null || true' EXIT
export GRANULE_PASSWORD=bench

java bench/GenImage.java create "$work/vm.img" "$size_mib" 42 > /dev/null
bin/granule init --repo "$work/warm" > /dev/null # warm-up: class-data-sharing archives
bin/granule backup --repo "$work/warm" --disk vm="$work/vm.img" --no-progress > /dev/null
bin/granule restore disk latest:vm --repo "$work/warm" --to "$work/warm.img" > /dev/null
rm -rf "$work/warm" "$work/warm.img"

# slow CMD...: runs CMD in the throttled cgroup, timed; sets $secs
slow() {
  local t0 t1
  t0=$(date +%s.%N)
  bash -c 'echo $$ > "$0/tasks"; exec "$@"' "$cg" "$@" > "$work/cmd.log" 2>&1 \
    || { cat "$work/cmd.log"; exit 1; }
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
}
fio_rate=0
if command -v fio > /dev/null; then
  fio_rate=$(bash -c 'echo $$ > "$0/tasks"; exec "$@"' "$cg" fio --name=slow \
    --filename="$work/fio.tmp" --rw=write --bs=1M --size=1G --direct=1 --ioengine=libaio \
    --iodepth=32 --end_fsync=1 --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"])')
  rm -f "$work/fio.tmp"
fi

: > "$work/raw.tsv"
for ((r = 1; r <= rounds; r++)); do
  rm -rf "$work/repo" "$work/restored.img"
  bin/granule init --repo "$work/repo" > /dev/null
  cat "$work/vm.img" > /dev/null # the image in the page cache, as in bench/e2e.sh
  sync
  slow bin/granule backup --repo "$work/repo" --disk vm="$work/vm.img" --no-progress
  backup_s=$secs
  repo_bytes=$(du -sb "$work/repo" | cut -f1)
  sync; echo 3 > /proc/sys/vm/drop_caches
  granule_program_cached
  slow bin/granule restore disk latest:vm --repo "$work/repo" --to "$work/restored.img" --no-progress
  restore_s=$secs
  data_bytes=$(( $(stat -c '%b * %B' "$work/restored.img") ))
  cmp -s "$work/restored.img" "$work/vm.img" || { echo "restored image differs" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\n' "$backup_s" "$restore_s" "$repo_bytes" "$data_bytes" >> "$work/raw.tsv"
done

{
  echo "# Slow-disk emulation"
  echo
  echo "Command: \`bench/slow-disk.sh $rate_mib $size_mib $rounds\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)."
  echo "Writes of the benchmark's processes capped at $rate_mib MiB/s (cgroup v1 blkio throttle on $majmin;"
  echo "fio in the same cgroup, 1 MiB O_DIRECT writes, 32 in flight: $((fio_rate / 1048576)) MiB/s). Image: bench/GenImage.java,"
  echo "${size_mib} MiB, in the page cache for the backup; the restore reads the repository from the disk (page cache"
  echo "dropped) and ends with the image synced. Floor = the bytes the step writes at the capped rate."
  echo "Wall-clock seconds, median of $rounds rounds (min-max), start-up included."
  echo
  echo "| step | Granule s | bytes written MiB | floor at $rate_mib MiB/s s | Granule / floor |"
  echo "|---|---:|---:|---:|---:|"
  python3 - "$work/raw.tsv" "$rate_mib" <<'EOF'
import statistics, sys
rows = [[float(x) for x in l.split()] for l in open(sys.argv[1]) if l.strip()]
rate = float(sys.argv[2]) * 1048576
def cell(xs):
    m = statistics.median(xs)
    return "%.2f" % m if len(xs) == 1 else "%.2f (%.2f-%.2f)" % (m, min(xs), max(xs))
for step, t, b in (("full backup (packs)", 0, 2), ("full restore + sync (image data)", 1, 3)):
    secs = [r[t] for r in rows]
    nbytes = statistics.median(r[b] for r in rows)
    floor = nbytes / rate
    print("| %s | %s | %d | %.2f | %.2f |" % (step, cell(secs), nbytes / 1048576, floor,
                                             statistics.median(secs) / floor))
EOF
} > "$out"
cat "$out"
