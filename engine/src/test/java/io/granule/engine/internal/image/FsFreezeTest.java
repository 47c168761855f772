package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.FreezeRecord.Verdict;
import io.granule.engine.spi.SnapshotProvider;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link FsFreeze}'s bookkeeping against a stand-in {@code fsfreeze} that behaves as the kernel's
 * freeze does: a freeze may wait (here while {@code MOUNT/.hold} exists: a writer that does not
 * finish), a thaw meanwhile is answered EINVAL, and the freeze takes effect once the wait ends;
 * freezing what is frozen is answered EBUSY. Its state is {@code MOUNT/.state}.
 */
class FsFreezeTest {
  @TempDir Path tmp;
  Path records;

  static final String FAKE =
      "#!/bin/sh\n"
          + "s=\"$2/.state\"\n"
          + "case \"$1\" in\n"
          + "-f) if [ -e \"$s\" ]; then echo \"fsfreeze: $2: freeze failed: Device or resource"
          + " busy\"; exit 1; fi\n"
          + "    echo freezing > \"$s\"\n"
          + "    while [ -e \"$2/.hold\" ]; do sleep 0.05; done\n"
          + "    echo frozen > \"$s\"; echo froze >> \"$2/.log\"; exit 0;;\n"
          + "-u) if [ \"$(cat \"$s\" 2>/dev/null)\" = frozen ]; then rm -f \"$s\";"
          + " echo thawed >> \"$2/.log\"; exit 0; fi\n"
          + "    echo \"fsfreeze: $2: unfreeze failed: Invalid argument\"; exit 1;;\n"
          + "esac\n";

  @BeforeEach
  void fake() throws IOException {
    Path script = tmp.resolve("fsfreeze");
    Files.writeString(script, FAKE);
    Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwx------"));
    records = tmp.resolve("records");
    FsFreeze.command = script.toString();
    FsFreeze.records = records;
    FsFreeze.stepLimit = Duration.ofSeconds(1);
    FsFreeze.retryEvery = Duration.ofMillis(200);
    FreezeTarget.directoriesStandIn = true; // directories stand in for mounts
  }

  @AfterEach
  void restore() {
    FsFreeze.command = "fsfreeze";
    FsFreeze.records = FsFreeze.RECORDS;
    FsFreeze.stepLimit = FsFreeze.STEP_LIMIT;
    FsFreeze.retryEvery = Duration.ofSeconds(30);
    FsFreeze.host = FreezeRecord.LINUX;
    FreezeTarget.directoriesStandIn = false;
  }

  Path mount(String name) throws IOException {
    return Files.createDirectories(tmp.resolve(name));
  }

  static String state(Path m) throws IOException {
    Path s = m.resolve(".state");
    return Files.exists(s) ? Files.readString(s).trim() : "thawed";
  }

  List<Path> recordFiles() throws IOException {
    if (!Files.isDirectory(records)) {
      return List.of();
    }
    try (var l = Files.list(records)) {
      return l.filter(p -> p.toString().endsWith(FreezeRecord.SUFFIX)).sorted().toList();
    }
  }

  static void await(String what, BooleanSupplier cond) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (!cond.getAsBoolean()) {
      assertThat(System.nanoTime() - deadline).as(what).isNegative();
      Thread.sleep(20);
    }
  }

  static boolean thawed(Path m) {
    try {
      return state(m).equals("thawed");
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void aFreezeCompletedAndThawedLeavesNoRecord() throws Exception {
    Path m = mount("a");
    SnapshotProvider.Hold hold = new FsFreeze().begin(List.of(m), Duration.ofSeconds(60));
    assertThat(state(m)).isEqualTo("frozen");
    assertThat(recordFiles()).hasSize(1);
    hold.close();
    assertThat(state(m)).isEqualTo("thawed");
    assertThat(recordFiles()).isEmpty();
  }

  /**
   * H1: a freeze still waiting for writers when it was given up on was "thawed" (EINVAL taken for
   * "not frozen"), dropped, and then took effect: frozen with nothing to thaw it.
   */
  @Test
  void aFreezeGivenUpOnStaysTrackedAndIsThawedOnceItTakesEffect() throws Exception {
    Path m = mount("stuck");
    Files.writeString(m.resolve(".hold"), "");
    FsFreeze f = new FsFreeze();
    assertThatThrownBy(() -> f.begin(List.of(m), Duration.ofSeconds(60)))
        .isInstanceOf(FsFreeze.StuckException.class)
        .hasMessageContaining("did not finish");
    assertThat(state(m)).isEqualTo("freezing");
    assertThat(recordFiles()).as("still tracked").hasSize(1);
    Files.delete(m.resolve(".hold")); // the writer finishes: the freeze takes effect
    await("the freeze that took effect is thawed", () -> thawed(m));
    // the fake fsfreeze logs after it changed the state: waited for, not read at once (it raced)
    await(
        "the thaw is logged",
        () -> {
          try {
            return Files.readAllLines(m.resolve(".log")).equals(List.of("froze", "thawed"));
          } catch (IOException e) {
            throw new AssertionError(e);
          }
        });
    assertThat(Files.readAllLines(m.resolve(".log"))).containsExactly("froze", "thawed");
    await("its record is removed once thawed", () -> uncheckedRecords().isEmpty());
  }

  /** The watchdog's thaw, too, leaves a freeze under way tracked. */
  @Test
  void aLimitPassedWhileAFreezeWaitsStillEndsThawed() throws Exception {
    FsFreeze.stepLimit = Duration.ofSeconds(3);
    Path a = mount("first");
    Path b = mount("second");
    Files.writeString(b.resolve(".hold"), "");
    Thread release =
        new Thread(
            () -> {
              try {
                Thread.sleep(1500); // past the 500 ms limit, within the step
                Files.delete(b.resolve(".hold"));
              } catch (Exception e) {
                throw new RuntimeException(e);
              }
            });
    release.start();
    SnapshotProvider.Hold hold = new FsFreeze().begin(List.of(a, b), Duration.ofMillis(500));
    release.join();
    assertThatThrownBy(hold::check).hasMessageContaining("passed its 500 ms limit");
    hold.close();
    await("both thawed", () -> thawed(a) && thawed(b));
    assertThat(recordFiles()).isEmpty();
  }

  List<Path> uncheckedRecords() {
    try {
      return recordFiles();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  /**
   * M1: a second freeze of a mount frozen already is refused (EBUSY), and deleted the first
   * freeze's record, which both shared: after a kill -9 of the first, nothing thawed.
   */
  @Test
  void aRefusedSecondFreezeOfOneMountKeepsTheFirstsRecord() throws Exception {
    Path m = mount("shared");
    FsFreeze f = new FsFreeze();
    SnapshotProvider.Hold first = f.begin(List.of(m), Duration.ofSeconds(60));
    List<Path> before = recordFiles();
    assertThat(before).hasSize(1);
    assertThatThrownBy(() -> f.begin(List.of(m), Duration.ofSeconds(60)))
        .hasMessageContaining("busy");
    assertThat(recordFiles()).isEqualTo(before);
    assertThat(state(m)).isEqualTo("frozen");
    first.close();
    assertThat(state(m)).isEqualTo("thawed");
    assertThat(recordFiles()).isEmpty();
  }

  @Test
  void recordsAreUniquePerFreezeAndReadBack() {
    Path m = tmp.resolve("with space\nand newline");
    FreezeRecord a =
        FreezeRecord.ofThisProcess(m, 7, 30, Duration.ofSeconds(120), FreezeRecord.LINUX);
    FreezeRecord b =
        FreezeRecord.ofThisProcess(m, 7, 30, Duration.ofSeconds(120), FreezeRecord.LINUX);
    assertThat(a.fileName())
        .isNotEqualTo(b.fileName())
        .startsWith(ProcessHandle.current().pid() + "-");
    FreezeRecord r = FreezeRecord.parse(a.format());
    assertThat(r.format()).isEqualTo(a.format());
    assertThat(r.mount).isEqualTo(m);
    assertThat(r.startTime).isPositive();
    assertThat(r.deadline - r.frozenAt).isEqualTo(120_000 + FsFreeze.stepLimit.toMillis());
    assertThat(r.verdict(FreezeRecord.LINUX)).as("this process froze it").isEqualTo(Verdict.KEEP);
  }

  @Test
  void startTimeIsField22EvenWithSpacesAndParensInTheName() {
    String stat =
        "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
    assertThat(FreezeRecord.startTimeOf(stat)).hasValue(987654);
  }

  @Test
  void theMountIdIsThatOfTheMountOnTopHoldingThePath() {
    String info =
        "20 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
            + "30 20 7:0 / /srv/data rw - ext4 /dev/loop0 rw\n"
            + "31 20 7:1 / /srv/data rw - ext4 /dev/loop1 rw\n"
            + "32 20 7:2 / /srv/my\\040disk rw - ext4 /dev/loop2 rw\n";
    assertThat(FreezeRecord.mountIdIn(info, Path.of("/srv/data"))).hasValue(31);
    assertThat(FreezeRecord.mountIdIn(info, Path.of("/srv/data/sub"))).hasValue(31);
    assertThat(FreezeRecord.mountIdIn(info, Path.of("/srv/my disk"))).hasValue(32);
    assertThat(FreezeRecord.mountIdIn(info, Path.of("/srv/datax"))).hasValue(20);
  }

  /** A stand-in machine for the verdicts. */
  static final class FakeHost implements FreezeRecord.Host {
    long now = 1_000_000;
    String boot = "boot1";
    String pidNs = "pid:[1]";
    String mntNs = "mnt:[1]";
    OptionalLong start = OptionalLong.empty(); // of pid 100
    long dev = 7;
    long mountId = 30;
    boolean underWay;

    @Override
    public long nowMillis() {
      return now;
    }

    @Override
    public String bootId() {
      return boot;
    }

    @Override
    public String pidNs() {
      return pidNs;
    }

    @Override
    public String mntNs() {
      return mntNs;
    }

    @Override
    public OptionalLong startTime(long pid) {
      return pid == 100 ? start : OptionalLong.empty();
    }

    @Override
    public OptionalLong dev(Path path) {
      return dev < 0 ? OptionalLong.empty() : OptionalLong.of(dev);
    }

    @Override
    public OptionalLong mountId(Path path) {
      return OptionalLong.of(mountId);
    }

    @Override
    public boolean freezeUnderWay(Path path, long dev) {
      return underWay;
    }
  }

  static FreezeRecord record(long deadline) {
    return new FreezeRecord(
        100,
        5000,
        "boot1",
        "pid:[1]",
        "mnt:[1]",
        Path.of("/srv/data"),
        7,
        30,
        deadline - 60_000,
        deadline,
        "00",
        false);
  }

  /** M2: what a stale record leads to. */
  @Test
  void aRecordIsThawedOnlyIfItsFreezerIsGoneAndTheFilesystemIsStillThere() {
    FakeHost h = new FakeHost();
    FreezeRecord r = record(h.now + 10_000);
    assertThat(r.verdict(h)).as("pid gone").isEqualTo(Verdict.THAW);
    h.start = OptionalLong.of(5000);
    assertThat(r.verdict(h)).as("its freezer runs").isEqualTo(Verdict.KEEP);
    h.start = OptionalLong.of(5001);
    assertThat(r.verdict(h)).as("pid reused").isEqualTo(Verdict.THAW);
    h.underWay = true;
    assertThat(r.verdict(h)).as("an fsfreeze -f of it runs").isEqualTo(Verdict.KEEP);
    h.underWay = false;
    h.mountId = 31;
    assertThat(r.verdict(h)).as("mounted again").isEqualTo(Verdict.DROP_OTHER_FILESYSTEM);
    h.mntNs = "mnt:[2]";
    assertThat(r.verdict(h)).as("another mount namespace: by device").isEqualTo(Verdict.THAW);
    h.mntNs = "mnt:[1]";
    h.mountId = 30;
    h.dev = 8;
    assertThat(r.verdict(h)).as("another filesystem").isEqualTo(Verdict.DROP_OTHER_FILESYSTEM);
    h.dev = -1;
    assertThat(r.verdict(h)).as("gone").isEqualTo(Verdict.DROP_OTHER_FILESYSTEM);
    h.dev = 7;
    h.now = r.deadline + FreezeRecord.STALE_MARGIN.toMillis() + 1;
    assertThat(r.verdict(h)).as("long past its limit").isEqualTo(Verdict.DROP_EXPIRED);
    h.now = r.deadline;
    h.pidNs = "pid:[2]";
    assertThat(r.verdict(h)).as("another pid namespace").isEqualTo(Verdict.KEEP);
    h.now = r.deadline + FreezeRecord.STALE_MARGIN.toMillis() + 1;
    assertThat(r.verdict(h)).isEqualTo(Verdict.DROP_EXPIRED);
    h.pidNs = "pid:[1]";
    h.boot = "boot2";
    assertThat(r.verdict(h)).as("rebooted since").isEqualTo(Verdict.DROP_REBOOTED);
    assertThat(FreezeRecord.parse("100\n/srv/data\n").verdict(h)).isEqualTo(Verdict.DROP_LEGACY);
  }

  /** A record as this process would write it for {@code m}, by a process that is gone. */
  FreezeRecord goneFreezer(Path m, long deadline) {
    FreezeRecord mine =
        FreezeRecord.ofThisProcess(
            m,
            FreezeRecord.LINUX.dev(m).orElse(-1),
            FreezeRecord.LINUX.mountId(m).orElse(-1),
            Duration.ofSeconds(60),
            FreezeRecord.LINUX);
    return new FreezeRecord(
        mine.pid,
        mine.startTime + 1, // this pid, reused by this process
        mine.bootId,
        mine.pidNs,
        mine.mntNs,
        m,
        mine.dev,
        mine.mountId,
        mine.frozenAt,
        deadline,
        "0123456789abcdef",
        false);
  }

  void write(FreezeRecord r) throws IOException {
    Files.createDirectories(records);
    Files.writeString(records.resolve(r.fileName()), r.format(), StandardCharsets.UTF_8);
  }

  @Test
  void thawStaleThawsWhatAGoneFreezerLeftFrozen() throws Exception {
    Path m = mount("left");
    Files.writeString(m.resolve(".state"), "frozen");
    write(goneFreezer(m, System.currentTimeMillis() + 60_000));
    FsFreeze.thawStale();
    assertThat(state(m)).isEqualTo("thawed");
    assertThat(recordFiles()).isEmpty();
  }

  /**
   * M2: a record left after a thaw by hand led the next command to thaw whatever froze the
   * filesystem later: one past its deadline is removed instead, and one from an older granule
   * (which cannot be checked) too.
   */
  @Test
  void thawStaleLeavesAFreezeItCannotTellItsOwn() throws Exception {
    Path m = mount("other");
    Files.writeString(m.resolve(".state"), "frozen"); // another tool's freeze
    write(goneFreezer(m, System.currentTimeMillis() - FreezeRecord.STALE_MARGIN.toMillis() - 1));
    Files.writeString(records.resolve("1234abcd.frozen"), "2147483646\n" + m + "\n");
    FsFreeze.thawStale();
    assertThat(state(m)).isEqualTo("frozen");
    assertThat(recordFiles()).isEmpty();
  }

  /** A stale record beside a live freeze of the same filesystem does not thaw that one. */
  @Test
  void thawStaleLeavesAFilesystemALiveFreezerHolds() throws Exception {
    Path m = mount("live");
    SnapshotProvider.Hold hold = new FsFreeze().begin(List.of(m), Duration.ofSeconds(60));
    write(goneFreezer(m, System.currentTimeMillis() + 60_000));
    assertThat(recordFiles()).hasSize(2);
    FsFreeze.thawStale();
    assertThat(state(m)).isEqualTo("frozen");
    assertThat(recordFiles()).hasSize(1);
    hold.close();
    assertThat(state(m)).isEqualTo("thawed");
    assertThat(recordFiles()).isEmpty();
  }
}
