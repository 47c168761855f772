#!/usr/bin/env bash
# Full raw restore benchmark: `granule restore disk` of a 4 GiB VM-like image to a new file.
#
#   bench/restore.sh [RUNS] [SIZE_MIB]   (defaults 5 and 4096; prints Markdown tables)
#
# BUILDS="before=/path/a.jar after=runtime/target/granule.jar" times several builds, their runs
# interleaved (the default is this tree's runtime/target/granule.jar alone); OPTS_<label>="-D…"
# gives one of them JVM options (e.g. OPTS_direct=-Dgranule.restore.direct=always). Needs GNU time.
# Work files go to $BENCH_DIR (default /var/tmp/granule-restore-bench); the image and both
# repositories (unencrypted, encrypted; made by the first build) are kept there between calls,
# so builds can be compared on the same repositories (delete the folder to start again).
#
# Each run: delete the target, `sync`, time the restore (wall, user, sys, peak RSS), then time a
# `sync` right after it (what the restore left unwritten), then `cmp` the target with the image.
# The repositories are in the page cache (warm), as in bench/e2e.sh; GRANULE_CDS=off by default.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
size_mib="${2:-4096}"
work="${BENCH_DIR:-/var/tmp/granule-restore-bench}"
builds="${BUILDS:-this=$PWD/runtime/target/granule.jar}"
export GRANULE_CDS="${GRANULE_CDS:-off}" GRANULE_PASSWORD=bench
mkdir -p "$work"
img="$work/vm.img"
[ -f "$img" ] || java bench/GenImage.java create "$img" "$size_mib" 42 > /dev/null
first_jar="${builds%% *}"
first_jar="${first_jar#*=}"
for kind in plain enc; do
  repo="$work/repo-$kind"
  [ -d "$repo" ] && continue
  flag="" pw=(env)
  # a password given for an unencrypted repository is refused
  [ "$kind" = plain ] && flag=--insecure-no-encryption pw=(env -u GRANULE_PASSWORD)
  "${pw[@]}" GRANULE_JAR="$first_jar" bin/granule init $flag --repo "$repo" > /dev/null
  "${pw[@]}" GRANULE_JAR="$first_jar" bin/granule backup --repo "$repo" --disk vm="$img" --no-progress > /dev/null
done
cat "$work"/repo-*/data/*/* > /dev/null

log="$work/runs.txt"
: > "$log"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in plain enc; do
  for ((i = 1; i <= runs; i++)); do
    for b in $builds; do
      label="${b%%=*}"
      out="$work/out.img"
      rm -f "$out"
      sync
      opts_var="OPTS_$label"
      pw=(env); [ "$kind" = plain ] && pw=(env -u GRANULE_PASSWORD)
      "${pw[@]}" GRANULE_JAVA_OPTS="${!opts_var:-}" GRANULE_JAR="${b#*=}" /usr/bin/time -f "%e %U %S %M" -o "$work/time.log" \
        bin/granule restore disk latest:vm --repo "$work/repo-$kind" --to "$out" \
        > "$work/cmd.log" 2>&1 || { cat "$work/cmd.log"; exit 1; }
      s0=$(date +%s%N)
      sync
      s1=$(date +%s%N)
      read -r wall user sys rss < "$work/time.log"
      cmp "$out" "$img" || { echo "$label $kind run $i: restored image differs" >&2; exit 1; }
      echo "$label $kind $i $wall $user $sys $((rss / 1024)) $(((s1 - s0) / 1000000))" >> "$log"
    done
  done
done
rm -f "$work/out.img"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| build | repository | wall s: median (min-max) | user s | sys s | peak RSS MiB | sync after ms |"
echo "|---|---|---:|---:|---:|---:|---:|"
# Medians over the runs of each build and repository (for wall also the range).
awk '
  { k = $1 " | " $2; n[k]++; w[k, n[k]] = $4; u[k, n[k]] = $5; s[k, n[k]] = $6; m[k, n[k]] = $7;
    y[k, n[k]] = $8; if (!(k in seen)) { seen[k] = 1; order[++ko] = k } }
  function med(a, k, c,   i, j, t, v) {
    for (i = 1; i <= c; i++) v[i] = a[k, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    lo = v[1]; hi = v[c]
    return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  END {
    for (o = 1; o <= ko; o++) {
      k = order[o]; c = n[k]
      mw = med(w, k, c); wl = lo; wh = hi
      printf "| %s | %.2f (%.2f-%.2f) | %.2f | %.2f | %d | %d |\n", k, mw, wl, wh, med(u, k, c), med(s, k, c), med(m, k, c), med(y, k, c)
    }
  }' "$log"
echo
echo "All runs (build, repository, run, wall s, user s, sys s, peak RSS MiB, sync after ms):"
echo
sed 's/^/    /' "$log"
