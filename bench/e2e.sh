#!/usr/bin/env bash
# End-to-end benchmark: Granule against restic and borg on the same machine, in the same run.
#
#   bench/e2e.sh [SIZE_MIB] [ROUNDS]   (default 4096: a 4 GiB image, 3 rounds; results go to
#                                       bench/results-e2e.md)
#   E2E_SWEEP=1 bench/e2e.sh           also runs Granule's chunk size sweep (64 KiB … 4 MiB)
#   BENCH_DIR=/dev/shm E2E_OUT=bench/results-e2e-tmpfs.md bench/e2e.sh
#                                       everything in memory: what the tools cost without the disk
#
# Needs: runtime/target/granule.jar (./mvnw -q package -DskipTests), restic, borgbackup, GNU time
# and python3 (scripts/setup --bench installs them). Work files go to $BENCH_DIR (default /var/tmp).
#
# For each tool: full backup of a VM-like raw image, then an incremental backup of the same image
# after 1% of its 4 KiB blocks changed in clusters, then a full restore of the changed image, then
# `sync` (timed apart: the restore plus it is the time until the restored image is on disk; Granule
# fsyncs what it restores, restic and borg leave that to the kernel). Each step starts after an
# untimed `sync`, so no step pays for an earlier one's writeback; the page cache holds the images
# for everyone. Restores start with the repository out of the page cache (caches dropped, as root;
# E2E_COLD_RESTORE=0 keeps them): a restore comes long after its backup. The tools take turns within each round, so that a noisy neighbour spreads over all
# of them; the table gives the median of the rounds (min-max). Reported: wall time, bytes the
# incremental added to the repository, peak RSS.
#
# The disk's floor, measured in every round: the time cp and sync take to write the repository of
# Granule's full backup (the bytes any backup of this image must store, give or take compression)
# and the restored image (sparse, so its data only), and the disk's best write rate (fio, when
# installed: scripts/setup --bench), at which writing those bytes durably takes the least.
#
# Granule runs as users run it: bin/granule with its class-data-sharing archives, made by an
# untimed warm-up backup and restore of a small image first (GRANULE_CDS=off measures without).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
size_mib="${1:-4096}"
rounds="${2:-3}"
work="${BENCH_DIR:-/var/tmp}/granule-bench"
out="${E2E_OUT:-bench/results-e2e.md}"
[ -f runtime/target/granule.jar ] || { echo "build first: ./mvnw -q package -DskipTests" >&2; exit 1; }
for t in restic borg python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t: scripts/setup --bench" >&2; exit 1; }
done
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
export GRANULE_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE= BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export GRANULE_JAVA_OPTS="${GRANULE_JAVA_OPTS:-}"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
# What Granule's hashing and encryption run on here (native or the JDK's, which SIMD): a result
# from another machine says whether its CPU, not the code, made the difference.
granule_build="$(bin/granule --version 2>&1 | paste -sd ';' | sed 's/;/; /g')"

img="$work/vm.img"
java bench/GenImage.java create "$work/vm-base.img" "$size_mib" 42 >/dev/null
changed_bytes=$(cp --sparse=always "$work/vm-base.img" "$work/vm2.img" && java bench/GenImage.java change "$work/vm2.img" 1 7)

# Warm-up: class-data-sharing archives for the commands timed below (and the JDK's own files in
# the page cache), from a small image in a scratch repository.
java bench/GenImage.java create "$work/small.img" 64 1 >/dev/null
bin/granule init --repo "$work/warm" >/dev/null
bin/granule backup --repo "$work/warm" --disk vm="$work/small.img" --no-progress >/dev/null
bin/granule restore disk latest:vm --repo "$work/warm" --to "$work/small-restored.img" >/dev/null
rm -rf "$work/warm" "$work/small.img" "$work/small-restored.img"

# run CMD...: runs CMD under GNU time after a sync; sets $secs and $rss_mib
run() {
  local log="$work/time.log"
  sync
  # bash -c runs the shell function; GNU time's peak RSS covers the tool it starts (wait4 folds
  # the largest descendant's RSS into the child's).
  /usr/bin/time -f "%e %M" -o "$log" bash -c '"$@"' _ "$@" > "$work/cmd.log" 2>&1 \
    || { cat "$work/cmd.log"; exit 1; }
  read -r secs rss_kib < "$log"
  rss_mib=$((rss_kib / 1024))
}
du_bytes() { du -sb "$1" | cut -f1; }

# cold RESTORE_FN: before a restore, the page cache is emptied (as root), so that every tool reads
# its repository from the disk, as a restore days after the backup does; then the tool's own
# program files are read back (its version command, untimed; for Granule also its class-data-sharing
# archives, extracted bundles and the JDK's module image, which --version leaves partly cold), so
# that none pays for reading its program from the disk.
cold() {
  [ "${E2E_COLD_RESTORE:-1}" = 1 ] && [ -w /proc/sys/vm/drop_caches ] || return 0
  sync
  echo 3 > /proc/sys/vm/drop_caches
  case "$1" in
    g_*) granule_program_cached ;;
    r_*) restic version > /dev/null ;;
    b*) borg --version > /dev/null ;;
  esac
  cat "$work/vm2.img" > /dev/null  # compared with the restored image after the restore
}

raw="$work/raw.tsv"
: > "$raw"
cycle() {  # name init_fn backup_fn restore_fn repo
  local name="$1" init="$2" backup="$3" restore="$4" repo="$5"
  rm -rf "$repo" "$work/restore.img"
  $init "$repo"
  cp --sparse=always "$work/vm-base.img" "$img"
  cat "$img" > /dev/null
  run $backup "$repo"; local full_s=$secs full_rss=$rss_mib
  local before; before=$(du_bytes "$repo")
  cp --sparse=always "$work/vm2.img" "$img"
  cat "$img" > /dev/null
  run $backup "$repo"; local inc_s=$secs inc_rss=$rss_mib
  local added=$(( $(du_bytes "$repo") - before ))
  cold "$restore"
  run $restore "$repo"; local res_s=$secs res_rss=$rss_mib
  local t0 t1; t0=$(date +%s.%N); sync; t1=$(date +%s.%N)
  local sync_s; sync_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  cmp -s "$work/restore.img" "$work/vm2.img" || { echo "$name: restored image differs" >&2; exit 1; }
  local peak=$(( full_rss > inc_rss ? full_rss : inc_rss )); peak=$(( peak > res_rss ? peak : res_rss ))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$full_s" "$inc_s" "$added" "$res_s" "$sync_s" "$peak" >> "$raw"
  rm -rf "$repo" "$work/restore.img"
}

g_init() { bin/granule init --repo "$1" ${GCHUNK:+--chunk-size $GCHUNK} > /dev/null; }
g_init_plain() { bin/granule init --insecure-no-encryption --repo "$1" > /dev/null; }
g_backup() { bin/granule backup --repo "$1" --disk vm="$img" --no-progress; }
g_restore() { rm -f "$work/restore.img"; bin/granule restore disk latest:vm --repo "$1" --to "$work/restore.img"; }
# an unencrypted repository is used without a password (one given for it is refused)
g_backup_plain() { env -u GRANULE_PASSWORD bash -c 'g_backup "$1"' _ "$1"; }
g_restore_plain() { env -u GRANULE_PASSWORD bash -c 'g_restore "$1"' _ "$1"; }
r_init() { restic init -q --repo "$1"; }
r_backup() { restic backup -q --repo "$1" --stdin --stdin-filename vm.img < "$img"; }
r_restore() { restic dump -q --repo "$1" latest vm.img > "$work/restore.img"; }
b_init() { borg init -e none "$1"; }
b_backup() { borg create "$1::$(date +%s%N)" - < "$img"; }
b_restore() { borg extract --stdout "$1::$(borg list --short --last 1 "$1")" > "$work/restore.img"; }
bf_backup() { borg create --chunker-params fixed,4194304 "$1::$(date +%s%N)" - < "$img"; }
# --sparse: borg skips the image's holes and all-zero chunks unhashed, as Granule does by default
bfs_backup() { borg create --sparse --chunker-params fixed,4194304 "$1::$(date +%s%N)" - < "$img"; }

# floor: Granule's encrypted full-backup repository and the changed image, copied and synced (after
# a sync, their sources in the page cache); appends "backup_s restore_s repo_bytes data_bytes"
floors="$work/floors.tsv"
: > "$floors"
floor() {
  local src="$work/floor-src" t0 t1 t2 t3 data
  rm -rf "$src" "$work/floor-copy" "$work/floor.img"
  g_init "$src"
  cp --sparse=always "$work/vm-base.img" "$img"
  g_backup "$src" > /dev/null 2>&1
  find "$src" -type f -exec cat {} + > /dev/null
  cat "$work/vm2.img" > /dev/null
  sync
  t0=$(date +%s.%N); cp -r "$src" "$work/floor-copy"; sync; t1=$(date +%s.%N)
  t2=$(date +%s.%N); cp --sparse=always "$work/vm2.img" "$work/floor.img"; sync; t3=$(date +%s.%N)
  data=$(( $(stat -c '%b * %B' "$work/floor.img") ))
  # the disk's best sequential write rate this round (bytes/s; 0 without fio or O_DIRECT): 1 MiB
  # direct writes, 32 in flight, 1 GiB, fsynced
  local bw=0
  if command -v fio > /dev/null; then
    bw=$(fio --name=floor --filename="$work/fio.tmp" --rw=write --bs=1M --size=1G --direct=1 \
      --ioengine=libaio --iodepth=32 --end_fsync=1 --output-format=json 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"])' \
      2>/dev/null || echo 0)
    rm -f "$work/fio.tmp"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" \
    "$(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.2f", b-a}')" "$(du_bytes "$src")" "$data" "$bw" \
    >> "$floors"
  rm -rf "$src" "$work/floor-copy" "$work/floor.img"
}

export -f g_init g_init_plain g_backup g_restore g_backup_plain g_restore_plain r_init r_backup r_restore b_init b_backup b_restore bf_backup bfs_backup
export img work GCHUNK=

for ((r = 1; r <= rounds; r++)); do
  echo "round $r of $rounds" >&2
  cycle "granule (default: 512 KiB, encrypted)" g_init g_backup g_restore "$work/granule"
  cycle "granule (default: 512 KiB, unencrypted)" g_init_plain g_backup_plain g_restore_plain "$work/granule-plain"
  cycle "restic $(restic version | cut -d' ' -f2) (encrypted)" r_init r_backup r_restore "$work/restic"
  cycle "borg $(borg --version | cut -d' ' -f2) (buzhash, unencrypted)" b_init b_backup b_restore "$work/borg"
  cycle "borg $(borg --version | cut -d' ' -f2) (fixed 4 MiB, unencrypted)" b_init bf_backup b_restore "$work/borgf"
  cycle "borg $(borg --version | cut -d' ' -f2) (fixed 4 MiB, --sparse, unencrypted)" b_init bfs_backup b_restore "$work/borgfs"
  floor
done
main_raw=$(cat "$raw")
: > "$raw"
if [ "${E2E_SWEEP:-0}" = 1 ]; then
  for c in 64K 128K 256K 512K 1M 2M 4M; do
    export GCHUNK=$c
    cycle "granule $c" g_init g_backup g_restore "$work/granule-$c"
  done
fi
sweep_raw=$(cat "$raw")
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# table RAW: one row per tool, medians of its rounds (min-max when there are several)
table() {
  python3 - "$changed_bytes" <<EOF
import statistics, sys
changed = int(sys.argv[1])
rows = {}
for line in """$1""".strip().splitlines():
    name, *v = line.split("\t")
    rows.setdefault(name, []).append([float(x) for x in v])
def cell(xs, fmt="%.2f"):
    m = fmt % statistics.median(xs)
    return m if len(xs) == 1 else "%s (%s-%s)" % (m, fmt % min(xs), fmt % max(xs))
for name, runs in rows.items():
    col = list(zip(*runs))
    full, inc, added, res, syn, rss = col
    print("| %s | %s | %s | %d | %.1fx | %s | %s | %d |" % (
        name, cell(full), cell(inc), statistics.median(added) / 1048576,
        statistics.median(added) / changed, cell(res),
        cell([a + b for a, b in zip(res, syn)]), max(rss)))
EOF
}
# ratios: the fastest peer's median over each Granule row's median, per step; then what 2x the
# fastest peer asks for beside the disk's floor for that step (the repository's write for a
# backup, the image's for a restore + sync)
ratios() {
  python3 - "$floors" <<EOF
import statistics, sys
floor_rows = [[float(x) for x in l.split()] for l in open(sys.argv[1]) if l.strip()]
floor = {}
copy = {}
if floor_rows:
    copy = {"full backup": statistics.median(r[0] for r in floor_rows),
            "restore + sync": statistics.median(r[1] for r in floor_rows)}
    bw = statistics.median(r[4] for r in floor_rows)
    if bw > 0:
        # the bytes each step must write durably, at the disk's best rate
        floor = {"full backup": statistics.median(r[2] for r in floor_rows) / bw,
                 "restore + sync": statistics.median(r[3] for r in floor_rows) / bw}
rows = {}
for line in """$main_raw""".strip().splitlines():
    name, *v = line.split("\t")
    rows.setdefault(name, []).append([float(x) for x in v])
for step, i, plus in (("full backup", 0, None), ("full restore", 3, None), ("restore + sync", 3, 4)):
    # the median over rounds of each round's value (a sum for restore + sync), as in the table
    med = {n: statistics.median(v[i] + (v[plus] if plus is not None else 0) for v in r)
           for n, r in rows.items()}
    peers = {n: m for n, m in med.items() if not n.startswith("granule")}
    val = lambda m: m
    best = min(peers, key=lambda n: val(peers[n]))
    for n, m in med.items():
        if n.startswith("granule"):
            r = val(peers[best]) / val(m)
            how = "%.2fx faster than" % r if r >= 1 else "%.2fx slower than" % (1 / r)
            print("- %s, %s: %s the fastest peer (%s, %.2f s against %.2f s)" % (
                step, n, how, best, val(peers[best]), val(m)))
    if step in copy:
        half = val(peers[best]) / 2
        line = "  - 2x the fastest peer means %.2f s; cp + sync of this step's bytes took %.2f s" % (
            half, copy[step])
        if step in floor:
            line += ", and writing them at the disk's best rate (fio, below) takes %.2f s%s" % (
                floor[step],
                ": 2x is below that floor, out of reach of any tool that writes them durably"
                if half < floor[step] else "")
        print(line)
EOF
}
# floors_report: the disk floor's medians
floors_report() {
  python3 - "$floors" <<EOF
import statistics, sys
rows = [[float(x) for x in l.split()] for l in open(sys.argv[1]) if l.strip()]
if rows:
    col = list(zip(*rows))
    cell = lambda xs: "%.2f s" % statistics.median(xs) if len(xs) == 1 else \
        "%.2f s (%.2f-%.2f)" % (statistics.median(xs), min(xs), max(xs))
    print()
    print("Disk floor, measured in every round: \`cp -r\` + \`sync\` of the repository of Granule's encrypted full backup"
          " (%d MiB): %s; \`cp --sparse=always\` + \`sync\` of the changed image (%d MiB of data): %s."
          " A plain copy, not a hard floor: a writer with more writes in flight can beat it."
          % (statistics.median(col[2]) / 1048576, cell(col[0]), statistics.median(col[3]) / 1048576, cell(col[1])))
    bws = [b for b in col[4] if b > 0] if len(col) > 4 else []
    if bws:
        mib = [b / 1048576 for b in bws]
        m = statistics.median(mib)
        print()
        print("The disk's best write rate, measured in every round (fio: 1 MiB O_DIRECT writes, 32 in"
              " flight, 1 GiB, fsynced): %.0f MiB/s (%.0f-%.0f). At that rate the repository's %d MiB take"
              " %.2f s and the image's %d MiB %.2f s to write: the floor of a durable backup and restore"
              " on this disk, start-up and reading aside."
              % (m, min(mib), max(mib), statistics.median(col[2]) / 1048576,
                 statistics.median(col[2]) / 1048576 / m, statistics.median(col[3]) / 1048576,
                 statistics.median(col[3]) / 1048576 / m))
EOF
}

{
  echo "# End-to-end benchmark"
  echo
  echo "Command: \`bench/e2e.sh $size_mib $rounds\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r), $(java -version 2>&1 | head -1)."
  echo "Load average $load_before before, $load_after after."
  echo "Granule: $granule_build."
  echo "Image: ${size_mib} MiB raw, VM-like (35% zeros, 20% random, 25% compressible, 20% duplicated regions);"
  echo "the incremental changes 1% of its 4 KiB blocks in clusters: $((changed_bytes / 1048576)) MiB."
  if [ "${E2E_COLD_RESTORE:-1}" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then
    echo "Restores read their repository from the disk (page cache dropped before each, the tool's own files read back)."
  fi
  echo "Times are wall-clock seconds, median of $rounds rounds (min-max), images in the page cache; added = repository"
  echo "growth of the incremental; restore + sync = until the restored image is on disk (Granule fsyncs"
  echo "it before it exits, restic and borg do not); peak RSS is the largest of all runs."
  echo
  echo "| tool | full backup s | incremental s | incremental added MiB | added / changed | full restore s | restore + sync s | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  table "$main_raw"
  echo
  ratios
  floors_report
  if [ -n "$sweep_raw" ]; then
    echo
    echo "## Granule chunk size sweep (one round each, encrypted)"
    echo
    echo "| chunk size | full backup s | incremental s | incremental added MiB | added / changed | full restore s | restore + sync s | peak RSS MiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    table "$sweep_raw"
  elif [ -f "$out" ] && grep -q '^## Granule chunk size sweep' "$out"; then
    echo
    # not re-run (E2E_SWEEP=1 does): keep the last sweep, marked with the run it came from
    sed -n '/^## Granule chunk size sweep/,$p' "$out" | sed '1s/$/ (kept from an earlier run)/; 1s/ (kept from an earlier run) (kept from an earlier run)/ (kept from an earlier run)/'
    # the run it came from: named once, when it is first kept
    sed -n '/^## Granule chunk size sweep/,$p' "$out" | grep -q '^Earlier run: ' \
      || grep -m1 '^Command:' "$out" | sed 's/^/Earlier run: /'
  fi
} > "$out.new"
mv "$out.new" "$out"
cat "$out"
