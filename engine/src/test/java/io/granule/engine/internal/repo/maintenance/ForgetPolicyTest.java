package io.granule.engine.internal.repo.maintenance;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/** Forget policies on synthetic histories (manifests with chosen times). */
class ForgetPolicyTest {
  private static int serial;

  static Manifest snap(String time, String host, List<String> disks, String... tags) {
    String id = String.format(Locale.ROOT, "%064x", ++serial);
    List<Manifest.DiskEntry> d = new ArrayList<>();
    for (String n : disks) {
      d.add(new Manifest.DiskEntry(n, 1, 1, "raw", "00", 0, 0));
    }
    return new Manifest(1, id, time, host, List.of(tags), null, d, List.of(), null);
  }

  static Manifest snap(String time) {
    return snap(time, "h", List.of("vda"));
  }

  /** Every {@code step} from {@code from} (inclusive) to {@code to} (exclusive). */
  static List<Manifest> every(String from, String to, Duration step) {
    List<Manifest> out = new ArrayList<>();
    for (Instant t = Instant.parse(from); t.isBefore(Instant.parse(to)); t = t.plus(step)) {
      out.add(snap(t.toString()));
    }
    return out;
  }

  static List<String> keptTimes(List<ForgetPolicy.Group> groups) {
    assertThat(groups).hasSize(1);
    return groups.get(0).decisions().stream()
        .filter(ForgetPolicy.Decision::keep)
        .map(d -> d.snapshot().time())
        .toList();
  }

  static List<ForgetPolicy.Group> apply(ForgetPolicy p, List<Manifest> all) {
    return p.apply(all, SnapshotFilter.ANY, ZoneOffset.UTC);
  }

  @Test
  void keepLastKeepsTheNewest() {
    List<Manifest> all = every("2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z", Duration.ofHours(1));
    assertThat(keptTimes(apply(new ForgetPolicy(3, 0, 0, 0, 0, 0), all)))
        .containsExactly("2026-01-01T09:00:00Z", "2026-01-01T08:00:00Z", "2026-01-01T07:00:00Z");
  }

  @Test
  void keepDailyKeepsTheNewestOfEachOfTheLastDaysWithSnapshots() {
    List<Manifest> all = new ArrayList<>();
    for (String day : List.of("01", "02", "04", "05", "07")) {
      for (String hour : List.of("01", "12", "23")) {
        all.add(snap("2026-03-" + day + "T" + hour + ":00:00Z"));
      }
    }
    assertThat(keptTimes(apply(new ForgetPolicy(0, 0, 3, 0, 0, 0), all)))
        .as("days without snapshots do not count")
        .containsExactly("2026-03-07T23:00:00Z", "2026-03-05T23:00:00Z", "2026-03-04T23:00:00Z");
  }

  @Test
  void everyRuleOnTwoYearsOfSnapshotsEverySixHours() {
    // 2024-12-01 .. 2026-11-25 18:00, every 6 hours.
    List<Manifest> all = every("2024-12-01T00:00:00Z", "2026-11-26T00:00:00Z", Duration.ofHours(6));
    assertThat(keptTimes(apply(new ForgetPolicy(0, 2, 0, 0, 0, 0), all)))
        .containsExactly("2026-11-25T18:00:00Z", "2026-11-25T12:00:00Z");
    assertThat(keptTimes(apply(new ForgetPolicy(0, 0, 0, 3, 0, 0), all)))
        .as("ISO weeks end on Sunday; 2026-11-25 is a Wednesday")
        .containsExactly("2026-11-25T18:00:00Z", "2026-11-22T18:00:00Z", "2026-11-15T18:00:00Z");
    assertThat(keptTimes(apply(new ForgetPolicy(0, 0, 0, 0, 3, 0), all)))
        .containsExactly("2026-11-25T18:00:00Z", "2026-10-31T18:00:00Z", "2026-09-30T18:00:00Z");
    assertThat(keptTimes(apply(new ForgetPolicy(0, 0, 0, 0, 0, 5), all)))
        .as("only three years have snapshots")
        .containsExactly("2026-11-25T18:00:00Z", "2025-12-31T18:00:00Z", "2024-12-31T18:00:00Z");

    List<ForgetPolicy.Group> combined = apply(new ForgetPolicy(1, 0, 2, 2, 2, 2), all);
    List<ForgetPolicy.Decision> kept =
        combined.get(0).decisions().stream().filter(ForgetPolicy.Decision::keep).toList();
    assertThat(kept)
        .extracting(d -> d.snapshot().time() + " " + d.reasons())
        .containsExactly(
            "2026-11-25T18:00:00Z [last, daily 2026-11-25, weekly 2026-W48, monthly 2026-11,"
                + " yearly 2026]",
            "2026-11-24T18:00:00Z [daily 2026-11-24]",
            "2026-11-22T18:00:00Z [weekly 2026-W47]",
            "2026-10-31T18:00:00Z [monthly 2026-10]",
            "2025-12-31T18:00:00Z [yearly 2025]");
    assertThat(combined.get(0).decisions()).hasSize(all.size());
  }

  @Test
  void groupsAreHostAndItemNamesAndFiltersLeaveOthersAlone() {
    List<Manifest> all =
        List.of(
            snap("2026-01-01T00:00:00Z", "a", List.of("vda")),
            snap("2026-01-02T00:00:00Z", "a", List.of("vda")),
            snap("2026-01-03T00:00:00Z", "a", List.of("vda", "vdb")),
            snap("2026-01-04T00:00:00Z", "a", List.of("vdb", "vda"), "nightly"),
            snap("2026-01-01T00:00:00Z", "b", List.of("vda"), "nightly"),
            snap("2026-01-02T00:00:00Z", "b", List.of("vda"), "nightly"));
    ForgetPolicy last1 = new ForgetPolicy(1, 0, 0, 0, 0, 0);
    List<ForgetPolicy.Group> groups = last1.apply(all, SnapshotFilter.ANY, ZoneOffset.UTC);
    assertThat(groups)
        .extracting(g -> g.host() + " " + g.items() + " " + g.decisions().size())
        .containsExactly("a [vda] 2", "a [vda, vdb] 2", "b [vda] 2");
    assertThat(groups)
        .allSatisfy(
            g -> {
              assertThat(g.decisions().get(0).keep()).isTrue();
              assertThat(g.decisions().get(1).keep()).isFalse();
            });
    assertThat(last1.apply(all, new SnapshotFilter("b", null), ZoneOffset.UTC))
        .extracting(ForgetPolicy.Group::host)
        .containsExactly("b");
    List<ForgetPolicy.Group> tagged =
        last1.apply(all, new SnapshotFilter(null, List.of("nightly")), ZoneOffset.UTC);
    assertThat(tagged)
        .extracting(g -> g.host() + " " + g.decisions().size())
        .containsExactly("a 1", "b 2");
  }

  @Test
  void periodsFollowTheTimeZone() {
    List<Manifest> all =
        List.of(
            snap("2026-11-25T21:30:00Z"),
            snap("2026-11-25T23:30:00Z"),
            snap("2026-11-26T00:30:00Z"));
    ForgetPolicy daily2 = new ForgetPolicy(0, 0, 2, 0, 0, 0);
    assertThat(keptTimes(daily2.apply(all, SnapshotFilter.ANY, ZoneOffset.UTC)))
        .containsExactly("2026-11-26T00:30:00Z", "2026-11-25T23:30:00Z");
    assertThat(keptTimes(daily2.apply(all, SnapshotFilter.ANY, ZoneId.of("+03:00"))))
        .as("all on 2026-11-26 at +03:00")
        .containsExactly("2026-11-26T00:30:00Z");
  }

  @Test
  void emptyAndNegativePolicies() {
    assertThat(new ForgetPolicy(0, 0, 0, 0, 0, 0).isEmpty()).isTrue();
    assertThat(new ForgetPolicy(0, 0, 0, 0, 0, 1).isEmpty()).isFalse();
    assertThatThrownBy(() -> new ForgetPolicy(-1, 0, 0, 0, 0, 0))
        .isInstanceOf(IllegalArgumentException.class);
  }
}
