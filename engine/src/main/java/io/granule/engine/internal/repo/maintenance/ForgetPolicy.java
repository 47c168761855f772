package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import java.time.ZoneId;
import java.time.ZonedDateTime;
import java.time.temporal.IsoFields;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * Which snapshots {@code forget} keeps, with restic's semantics.
 *
 * <p>Snapshots are grouped by host and by the set of their item names (disks and streams): a VM
 * with disks {vda, vdb} and a database dump stream of the same host are separate histories. Within
 * a group, newest first: {@code last} keeps the n newest; {@code hourly}, {@code daily}, {@code
 * weekly} (ISO weeks, Monday first), {@code monthly} and {@code yearly} each keep the newest
 * snapshot of each of the n most recent periods that have a snapshot. A snapshot kept by any rule
 * is kept; the others are removed. Periods are those of {@code zone} (the CLI uses the local time
 * zone, as restic does; {@code TZ=UTC} makes them UTC). A count of 0 disables a rule; a policy with
 * every rule disabled is refused by the CLI (it would remove everything).
 */
public record ForgetPolicy(int last, int hourly, int daily, int weekly, int monthly, int yearly) {

  public ForgetPolicy {
    if (last < 0 || hourly < 0 || daily < 0 || weekly < 0 || monthly < 0 || yearly < 0) {
      throw new IllegalArgumentException("keep counts must not be negative");
    }
  }

  /** Whether no rule keeps anything. */
  public boolean isEmpty() {
    return last + hourly + daily + weekly + monthly + yearly == 0;
  }

  /** One snapshot's fate. */
  public record Decision(Manifest snapshot, boolean keep, List<String> reasons) {}

  /**
   * One group (host and item names) and the fate of each of its snapshots, newest first. Groups
   * come sorted by host, then item names.
   */
  public record Group(String host, List<String> items, List<Decision> decisions) {}

  /**
   * Applies the policy to the snapshots that pass {@code filter}; the others are not looked at (and
   * so kept).
   */
  public List<Group> apply(List<Manifest> snapshots, SnapshotFilter filter, ZoneId zone) {
    Map<String, List<Manifest>> groups = new TreeMap<>();
    Map<String, List<String>> groupItems = new LinkedHashMap<>();
    Map<String, String> groupHost = new LinkedHashMap<>();
    List<Manifest> sorted = new ArrayList<>(snapshots);
    sorted.sort(Comparator.comparing(Manifest::instant).thenComparing(Manifest::id).reversed());
    for (Manifest m : sorted) {
      if (!filter.matches(m)) {
        continue;
      }
      TreeSet<String> items = new TreeSet<>();
      m.disks().forEach(d -> items.add(d.name()));
      m.streams().forEach(s -> items.add(s.name()));
      String key = m.host() + "\u0000" + String.join("\u0000", items);
      groups.computeIfAbsent(key, k -> new ArrayList<>()).add(m);
      groupItems.putIfAbsent(key, List.copyOf(items));
      groupHost.putIfAbsent(key, m.host());
    }
    List<Group> out = new ArrayList<>();
    for (var e : groups.entrySet()) {
      out.add(
          new Group(
              groupHost.get(e.getKey()), groupItems.get(e.getKey()), decide(e.getValue(), zone)));
    }
    return out;
  }

  /** Decides for one group, given newest first. */
  private List<Decision> decide(List<Manifest> newestFirst, ZoneId zone) {
    List<List<String>> reasons = new ArrayList<>();
    newestFirst.forEach(m -> reasons.add(new ArrayList<>()));
    rule(newestFirst, zone, reasons, last, "last", t -> null);
    rule(newestFirst, zone, reasons, hourly, "hourly", t -> t.toLocalDate() + "T" + t.getHour());
    rule(newestFirst, zone, reasons, daily, "daily", t -> t.toLocalDate().toString());
    rule(
        newestFirst,
        zone,
        reasons,
        weekly,
        "weekly",
        t -> t.get(IsoFields.WEEK_BASED_YEAR) + "-W" + t.get(IsoFields.WEEK_OF_WEEK_BASED_YEAR));
    rule(
        newestFirst, zone, reasons, monthly, "monthly", t -> t.getYear() + "-" + t.getMonthValue());
    rule(newestFirst, zone, reasons, yearly, "yearly", t -> Integer.toString(t.getYear()));
    List<Decision> out = new ArrayList<>();
    for (int i = 0; i < newestFirst.size(); i++) {
      out.add(
          new Decision(newestFirst.get(i), !reasons.get(i).isEmpty(), List.copyOf(reasons.get(i))));
    }
    return out;
  }

  /**
   * Keeps the first (newest) snapshot of each of the {@code count} most recent buckets; a null
   * bucket function (keep-last) makes every snapshot its own bucket.
   */
  private static void rule(
      List<Manifest> newestFirst,
      ZoneId zone,
      List<List<String>> reasons,
      int count,
      String name,
      Function<ZonedDateTime, String> bucket) {
    int left = count;
    String lastBucket = null;
    for (int i = 0; i < newestFirst.size() && left > 0; i++) {
      ZonedDateTime t = newestFirst.get(i).instant().atZone(zone);
      String b = bucket.apply(t);
      if (b == null || !b.equals(lastBucket)) {
        reasons.get(i).add(b == null ? name : name + " " + b);
        lastBucket = b;
        left--;
      }
    }
  }
}
