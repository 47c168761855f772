#!/usr/bin/env bash
# Single-table restore from a block backup: a 100 MB table out of a 4 GiB disk that holds a
# database server's data directory (loop-mounted ext4, the server running), against restoring the
# whole disk. Results: bench/results-table-restore.md
#
#   bench/table-restore.sh [DISK_MIB] [TABLE_MB]     (defaults 4096 and 100; run as root)
#
# The disk holds the cluster with the table, a second 1 GiB database and ~1 GiB of other files, so
# the table is a small part of what is on it. The backup is application-consistent (--freeze and
# --app); the restore loads the table into the same (live) server under the default new name.
# Reported: each phase as the plugin reports it, the total wall time (JVM start included), bytes and
# chunks fetched from the repository against the disk's data chunks, and a whole-disk restore.
set -euo pipefail
cd "$(dirname "$0")/.."
disk_mib="${1:-4096}"
table_mb="${2:-100}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-table"
out=bench/results-table-restore.md
bin=/usr/lib/postgresql/15/bin
[ "$(id -u)" = 0 ] || { echo "run as root (loop mount, fsfreeze)" >&2; exit 2; }
cleanup() {
  set +e
  fsfreeze -u "$work/mnt" 2>/dev/null
  [ -d "$work/mnt/pgdata" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$work/mnt/pgdata" -m immediate stop >/dev/null 2>&1
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  [ -n "${dev:-}" ] && losetup -d "$dev"
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work"; mkdir -p "$work/mnt" "$work/sock"
chmod 755 "$work"
truncate -s "${disk_mib}M" "$work/disk.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/disk.img"
dev=$(losetup -f --show "$work/disk.img")
mount "$dev" "$work/mnt"
mkdir -p "$work/mnt/pgdata" "$work/mnt/other"
for i in $(seq 1 16); do head -c 64M /dev/urandom > "$work/mnt/other/f$i.bin"; done
chown postgres:postgres "$work/mnt/pgdata" "$work/sock"
runuser -u postgres -- "$bin/initdb" -q -D "$work/mnt/pgdata" -U bench --auth-local=trust --auth-host=trust >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u postgres -- "$bin/pg_ctl" -D "$work/mnt/pgdata" -l "$work/pg.log" -w \
  -o "-p $port -k $work/sock -c listen_addresses=127.0.0.1" start >/dev/null
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U bench "$@"; }
psql -d postgres -c "CREATE DATABASE shop" -c "CREATE DATABASE other"
# ~TABLE_MB of rows of ~250 bytes with a primary key, and 1 GiB in another database
rows=$(( table_mb * 1000000 / 280 ))
psql -d shop -c "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, payload text, note text)" \
  -c "INSERT INTO orders SELECT g, g % 1000, md5(g::text), repeat(md5((g*7)::text), 6) FROM generate_series(1, $rows) g" \
  -c "ANALYZE orders"
psql -d other -c "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 1000000) g"
table_bytes=$(psql -d shop -At -c "SELECT pg_total_relation_size('orders')")
sync

export GRANULE_PASSWORD="${GRANULE_PASSWORD:-bench}"
repo="$work/repo"
bin/granule init --repo "$repo" >/dev/null
t0=$(date +%s%N)
bin/granule backup --repo "$repo" --disk db="$dev" --freeze "$work/mnt" --app "postgres://bench@127.0.0.1:$port/shop" --no-progress > "$work/backup.txt"
t1=$(date +%s%N)
backup_ms=$(( (t1 - t0) / 1000000 ))

t0=$(date +%s%N)
bin/granule restore table latest postgres:shop/public.orders --to "postgres://bench@127.0.0.1:$port/shop" --repo "$repo" --json > "$work/restore.json" 2> "$work/restore.err"
t1=$(date +%s%N)
table_ms=$(( (t1 - t0) / 1000000 ))
j() { python3 -c "import json; d=json.load(open('$work/restore.json')); print($1)"; }
restored_as=$(j "d['restoredAs']")
[ "$(psql -d shop -At -c "SELECT count(*) FROM $restored_as")" = "$rows" ] || { echo "row count differs" >&2; exit 1; }
phases=$(j "' | '.join('%s %.2f s' % (k, v) for k, v in d['phases'].items())")
fetched=$(j "d['bytesFetched']"); chunks=$(j "d['chunksFetched']"); data_chunks=$(j "d['diskDataChunks']")

t0=$(date +%s%N)
bin/granule restore disk latest --repo "$repo" --to "$work/disk-restored.img" >/dev/null
t1=$(date +%s%N)
disk_ms=$(( (t1 - t0) / 1000000 ))
rm -f "$work/disk-restored.img"

{
  echo "# Single-table restore"
  echo
  echo "Command: \`bench/table-restore.sh $disk_mib $table_mb\` on $(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(java -version 2>&1 | head -1), PostgreSQL $("$bin/postgres" --version | awk '{print $3}')."
  echo "Disk: ${disk_mib} MiB ext4 (loop device) holding a PostgreSQL 15 cluster (table \`shop.public.orders\`:"
  echo "$rows rows, $(( table_bytes / 1048576 )) MiB with its index; database \`other\` ~1 GiB) and 1 GiB of other files."
  echo "Backup: \`--freeze\` + \`--app\` (application-consistent), encrypted repository, default chunk size: ${backup_ms} ms."
  echo "Restore into the same live server under the default new schema. Times are wall clock, JVM start included."
  echo
  echo "| restore | total | phases | fetched from the repository | chunks fetched / disk data chunks |"
  echo "|---|---:|---|---:|---:|"
  echo "| PostgreSQL table \`restore table\` | ${table_ms} ms | $phases | $(( fetched / 1048576 )) MiB of ${disk_mib} MiB disk | $chunks / $data_chunks ($(awk -v f="$chunks" -v t="$data_chunks" 'BEGIN{printf "%.1f%%", 100*f/t}')) |"
  echo "| whole disk \`restore disk\` | ${disk_ms} ms | | all data chunks | $data_chunks / $data_chunks (100%) |"
} > "$out"
cat "$out"
