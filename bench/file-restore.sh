#!/usr/bin/env bash
# File-level restore from a block backup: one 10 MB file out of a 4 GiB disk (GPT + ext4 holding
# ~2 GiB of other files), against restoring the whole disk. Results: bench/results-file-restore.md
#   bench/file-restore.sh [DISK_MIB]     (default 4096; needs root-free tools: mkfs.ext4, sgdisk)
set -euo pipefail
cd "$(dirname "$0")/.."
disk_mib="${1:-4096}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-files"
out=bench/results-file-restore.md
rm -rf "$work"; mkdir -p "$work/tree/home/alice" "$work/tree/var/lib/db"
head -c 10000000 /dev/urandom > "$work/tree/home/alice/report.pdf"
fill_mib=$(( disk_mib / 2 ))
for i in $(seq 1 $(( fill_mib / 64 ))); do head -c 64M /dev/urandom > "$work/tree/var/lib/db/t$i.dat"; done
fs_mib=$(( disk_mib - 2 ))
truncate -s "${fs_mib}M" "$work/fs.img"
mkfs.ext4 -q -F -d "$work/tree" "$work/fs.img"
truncate -s "${disk_mib}M" "$work/disk.img"
sgdisk -o -n "1:2048:+$(( fs_mib ))M" "$work/disk.img" >/dev/null
dd if="$work/fs.img" of="$work/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$work/fs.img"
export GRANULE_PASSWORD="${GRANULE_PASSWORD:-bench}"
repo="$work/repo"
bin/granule init --repo "$repo" >/dev/null
bin/granule backup --repo "$repo" --disk vm="$work/disk.img" --no-progress >/dev/null

# The file restore N times (FILE_RUNS, default 5), each into a fresh directory: median, min, max.
runs="${FILE_RUNS:-5}"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
TIMEFORMAT='%R %U %S'
walls=(); cpus=()
for _ in $(seq "$runs"); do
  rm -rf "$work/out"
  t=$({ time bin/granule restore file --repo "$repo" latest /home/alice/report.pdf --to "$work/out" \
    >"$work/line" 2>"$work/err"; } 2>&1)
  read -r real user sys <<<"$t"
  walls+=("$(awk -v r="$real" 'BEGIN { printf "%d", r * 1000 }')")
  cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }')")
  cmp "$work/out/report.pdf" "$work/tree/home/alice/report.pdf"
done
line=$(cat "$work/line")
sorted() { printf '%s\n' "$@" | sort -n; }
file_ms=$(sorted "${walls[@]}" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
file_min=$(sorted "${walls[@]}" | head -1)
file_max=$(sorted "${walls[@]}" | tail -1)
file_cpu=$(sorted "${cpus[@]}" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
fetched=$(echo "$line" | sed -E 's/.* ([0-9]+) of ([0-9]+) chunks fetched.*/\1/')
with_data=$(echo "$line" | sed -E 's/.* ([0-9]+) of ([0-9]+) chunks fetched.*/\2/')
chunk_size=$(bin/granule stats --repo "$repo" --json | sed -nE 's/.*"chunkSize" *: *([0-9]+).*/\1/p')
total_chunks=$(( disk_mib * 1048576 / chunk_size ))

t0=$(date +%s%N)
bin/granule restore disk latest --repo "$repo" --to "$work/disk-restored.img" >/dev/null
t1=$(date +%s%N)
disk_ms=$(( (t1 - t0) / 1000000 ))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

{
  echo "# File-level restore"
  echo
  echo "Command: \`bench/file-restore.sh $disk_mib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(java -version 2>&1 | head -1)."
  echo "Disk: ${disk_mib} MiB, GPT, one ext4 partition holding a 10 MB file and ${fill_mib} MiB of other files;"
  echo "the repository's default chunk size, encrypted. Wall-clock times of the whole command (JVM and runtime start"
  echo "included; bin/granule's class-data-sharing archive on unless GRANULE_CDS=off: ${GRANULE_CDS:-on})."
  echo "The file restore ran ${runs} times: median wall (min-max) and median CPU time (user + sys, all threads)."
  echo "Load average ${load_before} before, ${load_after} after (on $(nproc) cores)."
  echo
  echo "| restore | time | chunks fetched | of the disk's chunks |"
  echo "|---|---:|---:|---:|"
  echo "| one 10 MB file (\`restore file\`) | ${file_ms} ms (${file_min}-${file_max}; CPU ${file_cpu} ms) | ${fetched} (of ${with_data} holding data) | $(awk -v f="$fetched" -v t="$total_chunks" 'BEGIN{printf "%.2f%%", 100*f/t}') |"
  echo "| whole disk (\`restore disk\`) | ${disk_ms} ms | ${with_data} | $(awk -v f="$with_data" -v t="$total_chunks" 'BEGIN{printf "%.2f%%", 100*f/t}') |"
} > "$out"
cat "$out"
rm -rf "$work"
