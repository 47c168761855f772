#!/usr/bin/env bash
# VM disk benchmark: the image readers, changed-block tracking and NBD serving.
#
#   bench/vmdisk.sh [SIZE_MIB]      (default 4096; results go to bench/results-vmdisk.md)
#
# Needs: runtime/target/granule.jar (./mvnw -q package -DskipTests), qemu-utils, libnbd-bin and GNU
# time (scripts/setup installs them). Work files go to $BENCH_DIR (default /var/tmp).
#
# 1. Full backup of the same VM-like image as raw, qcow2 and VMDK (monolithicSparse), each into a
#    fresh repository: the readers should not be the bottleneck (target: >= 80% of raw).
# 2. Incremental of the qcow2 image after writes of 1% of it (qemu-io, in 128 KiB runs): without
#    change tracking (every allocated byte read and hashed) and with --cbt (only the ranges its
#    dirty bitmap marks are read). Time and bytes read.
# 3. NBD: nbdcopy of the served snapshot (granule serve nbd) to /dev/null, 3 times, against reading the raw
#    image file with dd, and against nbdcopy from qemu-nbd serving the same raw file.
# 4. Restore of the raw backup to each image format (raw, qcow2, VMDK, VHDX), the repository read
#    from the disk (page cache dropped first, as root), median of 3 rounds, each image checked with
#    qemu-img compare; beside it qemu-img convert writing the same format from the raw image (in the
#    page cache): what the reference tool takes to write that format, reading nothing compressed,
#    encrypted or deduplicated.
# Page cache warm for everyone in 1-3: the figures compare the software, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-4096}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-vmdisk"
out="bench/results-vmdisk.md"
rm -rf "$work"; mkdir -p "$work"
export GRANULE_PASSWORD=bench
# Long operations, timed with their peak RSS: no class-data-sharing archive, so that no measured run
# is the one that writes it (about a second more, and the dump's memory). bench/startup.sh covers it.
export GRANULE_CDS="${GRANULE_CDS:-off}"

raw="$work/vm.img"
java bench/GenImage.java create "$raw" "$size_mib" 42 >/dev/null
qemu-img convert -f raw -O qcow2 "$raw" "$work/vm.qcow2"
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$raw" "$work/vm.vmdk"
cat "$raw" "$work/vm.qcow2" "$work/vm.vmdk" > /dev/null

# run CMD...: runs CMD under GNU time; sets $secs and $rss_mib; output in $work/cmd.log
run() {
  /usr/bin/time -f "%e %M" -o "$work/time.log" "$@" > "$work/cmd.log" 2>&1 \
    || { cat "$work/cmd.log"; exit 1; }
  read -r secs rss_kib < "$work/time.log"
  rss_mib=$((rss_kib / 1024))
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# thrice CMD...: runs CMD 3 times; sets $first (the first run's seconds) and $med (the median)
thrice() {
  local t=()
  for _ in 1 2 3; do run "$@"; t+=("$secs"); done
  first=${t[0]}; med=$(printf '%s\n' "${t[@]}" | median)
}
json() { python3 -c "import json,sys; print(json.load(open('$work/cmd.log'))$1)"; }
mibps() { awk -v b="$1" -v s="$2" 'BEGIN{printf "%.0f", b/1048576/s}'; }

: > "$work/rows1"
for fmt in raw qcow2 vmdk; do
  f="$work/vm.img"; [ "$fmt" = raw ] || f="$work/vm.$fmt"
  rm -rf "$work/repo"
  bin/granule init --repo "$work/repo" > /dev/null
  run bin/granule backup --repo "$work/repo" --disk vm="$f" --no-progress --json
  [ "$fmt" = raw ] && raw_secs=$secs
  pct=$(awk -v r="${raw_secs}" -v s="$secs" 'BEGIN{printf "%.0f%%", 100*r/s}')
  echo "| $fmt | $(du -b --apparent-size "$f" | cut -f1 | awk '{printf "%.0f", $1/1048576}') | $secs | $(mibps $((size_mib * 1048576)) "$secs") | $pct | $rss_mib |" >> "$work/rows1"
done

# incremental: 1% of the disk rewritten in 128 KiB runs, the same writes with and without a bitmap
writes=$(( size_mib * 1048576 / 100 / 131072 ))
python3 - "$size_mib" "$writes" > "$work/writes.qio" <<'PY'
import random, sys
size = int(sys.argv[1]) << 20; n = int(sys.argv[2]); r = random.Random(7)
for i in range(n):
    off = r.randrange(0, size - 131072) // 65536 * 65536
    print(f"write -P {1 + i % 250} {off} 131072")
PY
changed=$((writes * 131072))
: > "$work/rows2"
for mode in plain cbt; do
  cp --sparse=always "$work/vm.qcow2" "$work/inc.qcow2"
  rm -rf "$work/repo"
  bin/granule init --repo "$work/repo" > /dev/null
  flag=""; [ "$mode" = cbt ] && flag="--cbt"
  bin/granule backup --repo "$work/repo" --disk vm="$work/inc.qcow2" $flag --no-progress > /dev/null
  qemu-io -f qcow2 "$work/inc.qcow2" < "$work/writes.qio" > /dev/null
  run bin/granule backup --repo "$work/repo" --disk vm="$work/inc.qcow2" $flag --no-progress --json
  unchanged=$(json "['bytesUnchanged']"); zero=$(json "['bytesZero']")
  readb=$(( size_mib * 1048576 - unchanged - zero ))
  label="qcow2, no change tracking"; [ "$mode" = cbt ] && label="qcow2, --cbt (dirty bitmap)"
  echo "| $label | $((changed / 1048576)) | $secs | $((readb / 1048576)) | $((unchanged / 1048576)) | $rss_mib |" >> "$work/rows2"
  if [ "$mode" = cbt ]; then
    rm -f "$work/check.img"
    bin/granule restore disk latest:vm --repo "$work/repo" --to "$work/check.img" > /dev/null
    qemu-img compare -f raw -F qcow2 "$work/check.img" "$work/inc.qcow2" > /dev/null \
      || { echo "cbt incremental restores differently" >&2; exit 1; }
  fi
done

# NBD sequential read
rm -rf "$work/repo"
bin/granule init --repo "$work/repo" > /dev/null
bin/granule backup --repo "$work/repo" --disk vm="$raw" --no-progress > /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bin/granule serve nbd latest --repo "$work/repo" --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
serve=$!
for _ in $(seq 100); do nbdinfo --size "nbd://127.0.0.1:$port" > /dev/null 2>&1 && break; sleep 0.2; done
thrice nbdcopy "nbd://127.0.0.1:$port" null:
nbd_first=$first; nbd_secs=$med
kill $serve; wait $serve 2>/dev/null || true
qport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
qemu-nbd -r -f raw -p "$qport" -b 127.0.0.1 -t "$raw" > /dev/null 2>&1 &
qn=$!
for _ in $(seq 100); do nbdinfo --size "nbd://127.0.0.1:$qport" > /dev/null 2>&1 && break; sleep 0.2; done
thrice nbdcopy "nbd://127.0.0.1:$qport" null:
qnbd_first=$first; qnbd_secs=$med
kill $qn; wait $qn 2>/dev/null || true
thrice dd if="$raw" of=/dev/null bs=4M
dd_first=$first; dd_secs=$med
bytes=$((size_mib * 1048576))

# restore by image format (the repository of the NBD step): 3 interleaved rounds, medians
: > "$work/restores"
for round in 1 2 3; do
  for fmt in raw qcow2 vmdk vhdx; do
    t="$work/restored.$fmt"
    rm -f "$t"
    if [ -w /proc/sys/vm/drop_caches ]; then
      sync; echo 3 > /proc/sys/vm/drop_caches
      cat "$raw" > /dev/null # read back for the check below, and for qemu-img convert
    fi
    run bin/granule restore disk latest:vm --repo "$work/repo" --to "$t" --no-progress
    echo "$fmt granule $secs $rss_mib" >> "$work/restores"
    qemu-img compare -f raw -F "$fmt" "$raw" "$t" > /dev/null \
      || { echo "restore to $fmt differs from the image" >&2; exit 1; }
    echo "$fmt size $(du -B1 "$t" | cut -f1)" >> "$work/restores"
    rm -f "$t"
    if [ "$fmt" != raw ]; then
      opts=(); [ "$fmt" = vmdk ] && opts=(-o subformat=monolithicSparse)
      run qemu-img convert -f raw -O "$fmt" "${opts[@]}" "$raw" "$t"
      echo "$fmt qemu $secs $rss_mib" >> "$work/restores"
      rm -f "$t"
    fi
  done
done
: > "$work/rows4"
for fmt in raw qcow2 vmdk vhdx; do
  g=$(awk -v f="$fmt" '$1==f && $2=="granule" {print $3}' "$work/restores" | median)
  grss=$(awk -v f="$fmt" '$1==f && $2=="granule" {print $4}' "$work/restores" | sort -n | tail -1)
  alloc=$(awk -v f="$fmt" '$1==f && $2=="size" {print $3}' "$work/restores" | tail -1)
  q="-"
  [ "$fmt" = raw ] || q=$(awk -v f="$fmt" '$1==f && $2=="qemu" {print $3}' "$work/restores" | median)
  echo "| $fmt | $g | $(mibps $bytes "$g") | $((alloc / 1048576)) | $grss | $q |" >> "$work/rows4"
done

{
  echo "# VM disk benchmark"
  echo
  echo "Command: \`bench/vmdisk.sh $size_mib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), $(java -version 2>&1 | head -1), $(qemu-img --version | head -1)."
  echo "Image: ${size_mib} MiB, VM-like (bench/GenImage.java: 35% zeros, 20% random, 25% compressible, 20% duplicated),"
  echo "converted with qemu-img; encrypted repositories (the default); page cache warm. Times are wall-clock seconds."
  echo
  echo "## Full backup by image format"
  echo
  echo "| format | file MiB | backup s | MiB/s of virtual disk | vs raw | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|"
  cat "$work/rows1"
  echo
  echo "## Incremental after rewriting 1% of the disk (qemu-io, 128 KiB writes)"
  echo
  echo "Read = bytes of the virtual disk read and hashed (allocated, not unchanged); unchanged = skipped by the bitmap."
  echo
  echo "| backup | changed MiB | incremental s | read MiB | unchanged (not read) MiB | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|"
  cat "$work/rows2"
  echo
  echo "## NBD sequential read of the whole disk"
  echo
  echo "Three reads in a row from one server: the first (a server just started: its JIT compiling) and the"
  echo "median of the three."
  echo
  echo "| reader | first s | median s | MiB/s (median) |"
  echo "|---|---:|---:|---:|"
  echo "| dd of the raw image file (bs=4M) | $dd_first | $dd_secs | $(mibps $bytes "$dd_secs") |"
  echo "| nbdcopy from qemu-nbd serving the raw file | $qnbd_first | $qnbd_secs | $(mibps $bytes "$qnbd_secs") |"
  echo "| nbdcopy from granule serve nbd (snapshot in the repository) | $nbd_first | $nbd_secs | $(mibps $bytes "$nbd_secs") |"
  echo
  echo "## Restore to each image format"
  echo
  echo "granule restore disk of the raw image's encrypted backup, the repository read from the disk (page cache"
  echo "dropped before each restore), until the image is synced; median of 3 rounds. qemu-img convert: the same"
  echo "format written by qemu-img from the raw image in the page cache (a reference for writing the format, not a"
  echo "restore: it reads nothing compressed, encrypted or deduplicated). Allocated = the restored file's blocks."
  echo
  echo "| target | granule restore s | MiB/s of virtual disk | allocated MiB | peak RSS MiB | qemu-img convert s |"
  echo "|---|---:|---:|---:|---:|---:|"
  cat "$work/rows4"
} > "$out"
cat "$out"
rm -rf "$work"
