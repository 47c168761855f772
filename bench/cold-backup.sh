#!/usr/bin/env bash
# Cold-source benchmark: a full backup of a VM image that is not in the page cache, as a running
# VM's disk usually is not (hypervisors write it past the cache), Granule beside restic and borg.
#
#   bench/cold-backup.sh [SIZE_MIB] [ROUNDS]   (default 4096 and 3; results go to
#                                               bench/results-cold-backup.md)
#
# Needs root (to drop the page cache), runtime/target/granule.jar, restic, borgbackup, qemu-img,
# fincore (util-linux) and GNU time (scripts/setup --bench). Work files go to $BENCH_DIR (default
# /var/tmp).
#
# Each backup goes into a fresh repository after `sync` and dropping the page cache; the tool's own
# program files are read back first (untimed), so that only the image is cold. Reported per tool:
# wall time (median of the rounds, min-max), peak RSS, and how much of the image the backup left in
# the page cache (fincore, after the last round): what it evicted of the host's cached data to get
# there. The images: the raw bench image, and (Granule only: restic and borg back up a file's bytes,
# not a qcow2 disk's) the same disk as qcow2.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
size_mib="${1:-4096}"
rounds="${2:-3}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-cold"
out="bench/results-cold-backup.md"
[ -f runtime/target/granule.jar ] || { echo "build first: ./mvnw -q package -DskipTests" >&2; exit 1; }
[ -w /proc/sys/vm/drop_caches ] || { echo "needs root: drops the page cache" >&2; exit 1; }
for t in restic borg qemu-img fincore /usr/bin/time; do
  command -v "$t" > /dev/null || { echo "missing $t: scripts/setup --bench" >&2; exit 1; }
done
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
export GRANULE_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE= BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

img="$work/vm.img"
java bench/GenImage.java create "$img" "$size_mib" 42 > /dev/null
qemu-img convert -f raw -O qcow2 "$img" "$work/vm.qcow2"
# warm-up: Granule's class-data-sharing archive for backup
bin/granule init --repo "$work/warm" > /dev/null
bin/granule backup --repo "$work/warm" --disk vm="$work/vm.qcow2" --no-progress > /dev/null
rm -rf "$work/warm"

g_backup() { bin/granule backup --repo "$1" --disk vm="$2" --no-progress; }
r_backup() { restic backup -q --repo "$1" --stdin --stdin-filename vm.img < "$2"; }
b_backup() { borg create --sparse --chunker-params fixed,4194304 "$1::a" - < "$2"; }
export -f g_backup r_backup b_backup

# one NAME INIT BACKUP FILE: a cold backup into a fresh repository; appends "name secs rss cached"
one() {
  local name="$1" init="$2" backup="$3" file="$4" repo="$work/repo"
  rm -rf "$repo"
  $init "$repo" > /dev/null 2>&1
  sync; echo 3 > /proc/sys/vm/drop_caches
  case "$backup" in
    g_*) granule_program_cached ;;
    r_*) restic version > /dev/null ;;
    b_*) borg --version > /dev/null ;;
  esac
  /usr/bin/time -f "%e %M" -o "$work/time.log" bash -c '"$@"' _ "$backup" "$repo" "$file" \
    > "$work/cmd.log" 2>&1 || { cat "$work/cmd.log"; exit 1; }
  local secs rss
  read -r secs rss < "$work/time.log"
  local cached
  cached=$(fincore --bytes --noheadings --output RES "$file")
  printf '%s\t%s\t%s\t%s\n' "$name" "$secs" "$((rss / 1024))" "$cached" >> "$work/raw.tsv"
}
g_init() { bin/granule init --repo "$1"; }
r_init() { restic init -q --repo "$1"; }
b_init() { borg init -e none "$1"; }

: > "$work/raw.tsv"
for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds" >&2
  one "granule (encrypted), raw image" g_init g_backup "$img"
  one "granule (encrypted), the same disk as qcow2" g_init g_backup "$work/vm.qcow2"
  one "restic $(restic version | cut -d' ' -f2) (encrypted), raw image" r_init r_backup "$img"
  one "borg $(borg --version | cut -d' ' -f2) (fixed 4 MiB, --sparse, unencrypted), raw image" b_init b_backup "$img"
done

{
  echo "# Cold-source full backup"
  echo
  echo "Command: \`bench/cold-backup.sh $size_mib $rounds\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)."
  echo "Image: ${size_mib} MiB raw, VM-like (bench/GenImage.java, as in bench/e2e.sh), and the same disk"
  echo "converted to qcow2 by qemu-img. Before each backup the page cache is dropped (the tools' own"
  echo "files read back): the image is read from the disk. Times are wall-clock seconds, median of $rounds"
  echo "rounds (min-max); left in the page cache = bytes of the image file cached after the backup."
  echo
  echo "| tool, image | cold full backup s | peak RSS MiB | left in the page cache MiB |"
  echo "|---|---:|---:|---:|"
  python3 - "$work/raw.tsv" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, rss, cached = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append((float(secs), int(rss), int(cached)))
for name, runs in rows.items():
    s = [r[0] for r in runs]
    cell = "%.2f" % statistics.median(s) if len(s) == 1 else "%.2f (%.2f-%.2f)" % (
        statistics.median(s), min(s), max(s))
    print("| %s | %s | %d | %d |" % (name, cell, max(r[1] for r in runs), runs[-1][2] / 1048576))
EOF
} > "$out"
cat "$out"
