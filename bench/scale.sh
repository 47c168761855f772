#!/usr/bin/env bash
# Scaling benchmark: peak memory (and time) of a full backup, a full restore and a full data check
# as the disk image grows, Granule beside restic and borg. The issue's target: Granule's peak RSS
# stays under 512 MiB whatever the image size.
#
#   bench/scale.sh [SIZES_MIB]   (default "4096 16384 32768"; results go to bench/results-scale.md)
#
# Needs root (to drop the page cache), runtime/target/granule.jar, restic, borgbackup and GNU time
# (scripts/setup --bench), and free space in $BENCH_DIR (default /var/tmp) of about twice the data
# of the largest image plus one repository (32768 MiB: ~21 GiB of image data, ~7 GiB repository,
# ~21 GiB restored). One round per size: each step of each tool runs once.
#
# Per size: the VM-like image of bench/e2e.sh (bench/GenImage.java); per tool, in a fresh
# repository: a full backup, a full restore, a check that reads all data (granule verify
# --read-data, restic check --read-data, borg check --verify-data), each after `sync` and dropping
# the page cache (the tool's own program files read back first, untimed): every step reads from the
# disk, as a large image that does not fit in the page cache is read anyway. The restored image is
# compared with the original (cmp) and deleted before the next tool. restic and borg restore to
# stdout (as in bench/e2e.sh), through `dd conv=sparse` so that a restore of a large image does not
# fill the disk with zeros; Granule writes its sparse file itself. Peak RSS is GNU time's maximum
# resident set size of the step (the largest of its processes).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
sizes="${1:-4096 16384 32768}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-scale"
out="bench/results-scale.md"
[ -f runtime/target/granule.jar ] || { echo "build first: ./mvnw -q package -DskipTests" >&2; exit 1; }
[ -w /proc/sys/vm/drop_caches ] || { echo "needs root: drops the page cache" >&2; exit 1; }
for t in restic borg /usr/bin/time; do
  command -v "$t" > /dev/null || { echo "missing $t: scripts/setup --bench" >&2; exit 1; }
done
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
export GRANULE_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE= BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export work

# warm-up: Granule's class-data-sharing archives for the commands timed below
java bench/GenImage.java create "$work/small.img" 64 7 > /dev/null
bin/granule init --repo "$work/warm" > /dev/null
bin/granule backup --repo "$work/warm" --disk vm="$work/small.img" --no-progress > /dev/null
bin/granule restore disk latest:vm --repo "$work/warm" --to "$work/small-restored.img" > /dev/null
bin/granule verify --read-data --repo "$work/warm" > /dev/null
rm -rf "$work/warm" "$work/small.img" "$work/small-restored.img"

g_init() { bin/granule init --repo "$1"; }
g_backup() { bin/granule backup --repo "$1" --disk vm="$work/vm.img" --no-progress; }
g_restore() { bin/granule restore disk latest:vm --repo "$1" --to "$work/restore.img"; }
g_check() { bin/granule verify --read-data --repo "$1"; }
r_init() { restic init -q --repo "$1"; }
r_backup() { restic backup -q --repo "$1" --stdin --stdin-filename vm.img < "$work/vm.img"; }
r_restore() { restic dump -q --repo "$1" latest vm.img | dd of="$work/restore.img" bs=1M conv=sparse status=none; }
r_check() { restic check -q --read-data --repo "$1"; }
b_init() { borg init -e none "$1"; }
b_backup() { borg create --sparse --chunker-params fixed,4194304 "$1::a" - < "$work/vm.img"; }
b_restore() { borg extract --stdout "$1::a" | dd of="$work/restore.img" bs=1M conv=sparse status=none; }
b_check() { borg check --verify-data "$1"; }
export -f g_init g_backup g_restore g_check r_init r_backup r_restore r_check b_init b_backup b_restore b_check

# run SIZE NAME STEP FN REPO: one timed step after an empty page cache; appends a row to raw.tsv
run() {
  local size="$1" name="$2" step="$3" fn="$4" repo="$5"
  sync; echo 3 > /proc/sys/vm/drop_caches
  case "$fn" in
    g_*) granule_program_cached ;;
    r_*) restic version > /dev/null ;;
    b_*) borg --version > /dev/null ;;
  esac
  /usr/bin/time -f "%e %M" -o "$work/time.log" bash -c '"$@"' _ "$fn" "$repo" \
    > "$work/cmd.log" 2>&1 || { echo "$name: $step failed" >&2; cat "$work/cmd.log" >&2; exit 1; }
  local secs rss
  read -r secs rss < "$work/time.log"
  printf '%s\t%s\t%s\t%s\t%s\n' "$size" "$name" "$step" "$secs" "$((rss / 1024))" >> "$work/raw.tsv"
}

# tool SIZE NAME PREFIX: backup, restore (compared), check, in a fresh repository
tool() {
  local size="$1" name="$2" p="$3" repo="$work/repo"
  rm -rf "$repo" "$work/restore.img"
  "${p}_init" "$repo" > /dev/null 2>&1
  run "$size" "$name" backup "${p}_backup" "$repo"
  local bytes
  bytes=$(du -sb "$repo" | cut -f1)
  printf '%s\t%s\trepository\t%s\t0\n' "$size" "$name" "$bytes" >> "$work/raw.tsv"
  run "$size" "$name" restore "${p}_restore" "$repo"
  cmp -s "$work/restore.img" "$work/vm.img" || { echo "$name: restored image differs" >&2; exit 1; }
  rm -f "$work/restore.img"
  run "$size" "$name" check "${p}_check" "$repo"
  rm -rf "$repo"
}

: > "$work/raw.tsv"
for size in $sizes; do
  echo "image of $size MiB" >&2
  rm -f "$work/vm.img"
  java bench/GenImage.java create "$work/vm.img" "$size" 42 > /dev/null
  echo "$size $(du -B1 "$work/vm.img" | cut -f1)" >> "$work/data.txt"
  tool "$size" "granule (512 KiB, encrypted)" g
  tool "$size" "restic $(restic version | cut -d' ' -f2) (encrypted)" r
  tool "$size" "borg $(borg --version | cut -d' ' -f2) (fixed 4 MiB, --sparse, unencrypted)" b
done

{
  echo "# Scaling: peak memory as the image grows"
  echo
  echo "Command: \`bench/scale.sh \"$sizes\"\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/^Mem:/ {print $2}') GiB of memory, $(uname -r)."
  echo "Granule: $(bin/granule --version 2>/dev/null | head -1)."
  echo "Images: bench/GenImage.java (VM-like: 35% zeros, 20% random, 25% compressible, 20% duplicated"
  echo "regions). One round; every step after an empty page cache (reads from the disk). Time in"
  echo "wall-clock seconds, peak RSS in MiB (GNU time, the largest process of the step); restic and borg"
  echo "restore through \`dd conv=sparse\` (their restore writes stdout), Granule writes a sparse file;"
  echo "every restored image was compared with the original."
  echo
  python3 - "$work/raw.tsv" "$work/data.txt" <<'EOF'
import sys
rows, sizes, names = {}, [], []
for line in open(sys.argv[1]):
    size, name, step, secs, rss = line.rstrip("\n").split("\t")
    size = int(size)
    if size not in sizes: sizes.append(size)
    if name not in names: names.append(name)
    rows[(size, name, step)] = (float(secs), int(rss))
data = dict(tuple(int(x) for x in l.split()) for l in open(sys.argv[2]))
print("| image MiB (data MiB) | tool | repository MiB | backup s | backup RSS | restore s | restore RSS | check s | check RSS |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for s in sizes:
    for n in names:
        if (s, n, "backup") not in rows: continue
        b, r, c = rows[(s, n, "backup")], rows[(s, n, "restore")], rows[(s, n, "check")]
        repo = rows[(s, n, "repository")][0] / 1048576
        print("| %d (%d) | %s | %.0f | %.2f | %d | %.2f | %d | %.2f | %d |" % (
            s, data[s] / 1048576, n, repo, b[0], b[1], r[0], r[1], c[0], c[1]))
g = [rows[k][1] for k in rows if k[1].startswith("granule") and k[2] != "repository"]
print()
print("Granule's peak RSS over every size and step: %d MiB (target: under 512 MiB)." % max(g))
EOF
} > "$out"
cat "$out"
