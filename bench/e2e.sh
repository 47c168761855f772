#!/usr/bin/env bash
# End-to-end benchmark: Granule against restic and borg on the same machine, in the same run.
#
#   bench/e2e.sh [SIZE_MIB]      (default 4096: a 4 GiB image; results go to bench/results-e2e.md)
#
# Needs: runtime/target/granule.jar (./mvnw -q package -DskipTests), restic, borgbackup and GNU
# time (scripts/setup --bench installs them). Work files go to $BENCH_DIR (default /var/tmp).
#
# For each tool: full backup of a VM-like raw image, then an incremental backup of the same image
# after 1% of its 4 KiB blocks changed in clusters, then a full restore of the changed image.
# Reported: wall time, bytes the incremental added to the repository, peak RSS. Then Granule's
# chunk size sweep (64 KiB … 4 MiB) for the incremental. The page cache is warm for everyone
# (the image is read once before the first tool), so the figures compare the tools, not the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-4096}"
work="${BENCH_DIR:-/var/tmp}/granule-bench"
out="bench/results-e2e.md"
rm -rf "$work"; mkdir -p "$work"
export GRANULE_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE= BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export GRANULE_JAVA_OPTS="${GRANULE_JAVA_OPTS:-}"
# Long operations, timed with their peak RSS: no class-data-sharing archive, so that no measured run
# is the one that writes it (about a second more, and the dump's memory). bench/startup.sh covers it.
export GRANULE_CDS="${GRANULE_CDS:-off}"

img="$work/vm.img"
java bench/GenImage.java create "$img" "$size_mib" 42 >/dev/null
cp --sparse=always "$img" "$work/vm-base.img"
changed_bytes=$(cp --sparse=always "$img" "$work/vm2.img" && java bench/GenImage.java change "$work/vm2.img" 1 7)
cat "$img" "$work/vm2.img" > /dev/null

# run LABEL CMD...: runs CMD under GNU time; sets $secs and $rss_mib
run() {
  local log="$work/time.log"
  # bash -c runs the shell function; GNU time's peak RSS covers the tool it starts (wait4 folds
  # the largest descendant's RSS into the child's).
  /usr/bin/time -f "%e %M" -o "$log" bash -c '"$@"' _ "$@" > "$work/cmd.log" 2>&1 \
    || { cat "$work/cmd.log"; exit 1; }
  read -r secs rss_kib < "$log"
  rss_mib=$((rss_kib / 1024))
}
du_bytes() { du -sb "$1" | cut -f1; }
row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@" >> "$out.tmp"; }

: > "$out.tmp"
bench_tool() {  # name init_fn backup_fn restore_fn repo
  local name="$1" init="$2" backup="$3" restore="$4" repo="$5"
  rm -rf "$repo" "$work/restore.img"
  $init "$repo"
  cp --sparse=always "$work/vm-base.img" "$img"
  run $backup "$repo"; local full_s=$secs full_rss=$rss_mib
  local before; before=$(du_bytes "$repo")
  cp --sparse=always "$work/vm2.img" "$img"
  run $backup "$repo"; local inc_s=$secs inc_rss=$rss_mib
  local added=$(( $(du_bytes "$repo") - before ))
  run $restore "$repo"; local res_s=$secs res_rss=$rss_mib
  cmp -s "$work/restore.img" "$work/vm2.img" || { echo "$name: restored image differs" >&2; exit 1; }
  local peak=$(( full_rss > inc_rss ? full_rss : inc_rss )); peak=$(( peak > res_rss ? peak : res_rss ))
  row "$name" "$full_s" "$inc_s" "$((added / 1048576))" "$(awk -v a="$added" -v c="$changed_bytes" 'BEGIN{printf "%.1fx", a/c}')" "$res_s" "$peak"
  rm -rf "$repo"
}

g_init() { bin/granule init --repo "$1" ${GCHUNK:+--chunk-size $GCHUNK} > /dev/null; }
g_init_plain() { bin/granule init --insecure-no-encryption --repo "$1" > /dev/null; }
g_backup() { bin/granule backup --repo "$1" --disk vm="$img" --no-progress; }
g_restore() { rm -f "$work/restore.img"; bin/granule restore disk latest:vm --repo "$1" --to "$work/restore.img"; }
r_init() { restic init -q --repo "$1"; }
r_backup() { restic backup -q --repo "$1" --stdin --stdin-filename vm.img < "$img"; }
r_restore() { restic dump -q --repo "$1" latest vm.img > "$work/restore.img"; }
b_init() { borg init -e none "$1"; }
b_backup() { borg create "$1::$(date +%s%N)" - < "$img"; }
b_restore() { borg extract --stdout "$1::$(borg list --short --last 1 "$1")" > "$work/restore.img"; }
bf_backup() { borg create --chunker-params fixed,4194304 "$1::$(date +%s%N)" - < "$img"; }

export -f g_init g_init_plain g_backup g_restore r_init r_backup r_restore b_init b_backup b_restore bf_backup
export img work GCHUNK=

bench_tool "granule (default: 512 KiB, encrypted)" g_init g_backup g_restore "$work/granule"
bench_tool "granule (default: 512 KiB, unencrypted)" g_init_plain g_backup g_restore "$work/granule-plain"
bench_tool "restic 0.14" r_init r_backup r_restore "$work/restic"
bench_tool "borg 1.2 (buzhash)" b_init b_backup b_restore "$work/borg"
bench_tool "borg 1.2 (fixed 4 MiB)" b_init bf_backup b_restore "$work/borgf"
main_rows=$(cat "$out.tmp"); : > "$out.tmp"
for c in 64K 128K 256K 512K 1M 2M 4M; do
  export GCHUNK=$c
  bench_tool "granule $c" g_init g_backup g_restore "$work/granule-$c"
done
sweep_rows=$(cat "$out.tmp"); rm -f "$out.tmp"

{
  echo "# End-to-end benchmark"
  echo
  echo "Command: \`bench/e2e.sh $size_mib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), $(java -version 2>&1 | head -1)."
  echo "Image: ${size_mib} MiB raw, VM-like (35% zeros, 20% random, 25% compressible, 20% duplicated regions);"
  echo "the incremental changes 1% of its 4 KiB blocks in clusters: $((changed_bytes / 1048576)) MiB."
  echo "Times are wall-clock seconds, page cache warm; added = repository growth of the incremental;"
  echo "peak RSS is the largest of the three runs."
  echo
  echo "| tool | full backup s | incremental s | incremental added MiB | added / changed | full restore s | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "$main_rows"
  echo
  echo "## Granule chunk size sweep"
  echo
  echo "| chunk size | full backup s | incremental s | incremental added MiB | added / changed | full restore s | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "$sweep_rows"
} > "$out"
cat "$out"
rm -rf "$work"
