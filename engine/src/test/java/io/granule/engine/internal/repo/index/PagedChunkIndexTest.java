package io.granule.engine.internal.repo.index;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A chunk index larger than its memory budget: paged through its file, same answers. */
class PagedChunkIndexTest {
  private static final long MIB = 1 << 20;

  @TempDir Path tmp;

  private static ChunkId id(SplittableRandom r) {
    return ChunkIndexTest.id(r);
  }

  private static ChunkLocation loc(int i) {
    return ChunkIndexTest.loc(i);
  }

  /**
   * Grown by inserts from a resident table to one twenty times its 1 MiB budget: every entry found
   * with its location, absent ids absent, memory never over the budget, and the file gone after.
   */
  @Test
  void growsPastItsBudgetAndKeepsEveryEntry() throws Exception {
    SplittableRandom r = new SplittableRandom(7);
    List<ChunkId> ids = new ArrayList<>();
    try (ChunkIndex index = new ChunkIndex(tmp, 0, MIB)) {
      assertThat(index.resident()).isTrue();
      for (int i = 0; i < 200_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        assertThat(index.put(id, loc(i))).isTrue();
        assertThat(index.memoryBytes()).isLessThanOrEqualTo(MIB);
      }
      assertThat(index.resident()).isFalse();
      assertThat(index.tableBytes()).isGreaterThan(15 * MIB);
      assertThat(index.size()).isEqualTo(200_000);
      for (int i = 0; i < ids.size(); i++) {
        assertThat(index.get(ids.get(i))).isEqualTo(loc(i));
        assertThat(index.put(ids.get(i), loc(i + 1))).as("first location wins").isFalse();
      }
      for (int i = 0; i < 20_000; i++) {
        assertThat(index.contains(id(r))).isFalse();
      }
      assertThat(index.memoryBytes()).isLessThanOrEqualTo(MIB);
    }
    try (var files = Files.list(tmp)) {
      assertThat(files).isEmpty();
    }
  }

  /** Paged and resident tables built from the same entries answer every question alike. */
  @Test
  void answersAsAResidentTable() {
    SplittableRandom r = new SplittableRandom(3);
    List<ChunkId> ids = new ArrayList<>();
    try (ChunkIndex paged = new ChunkIndex(tmp, 60_000, MIB);
        ChunkIndex resident = new ChunkIndex(tmp, 60_000, 64 * MIB)) {
      assertThat(paged.resident()).isFalse();
      assertThat(resident.resident()).isTrue();
      for (int i = 0; i < 60_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        if (i % 3 == 0) {
          assertThat(paged.reserve(id)).isEqualTo(resident.reserve(id)).isTrue();
        } else {
          PackId pack = new PackId(i % 7, 1);
          ChunkLocation l = new ChunkLocation(pack, i, 100, 4096, 0);
          assertThat(paged.putInPack(id, l)).isEqualTo(resident.putInPack(id, l)).isTrue();
        }
      }
      for (int i = 0; i < ids.size(); i += 3) {
        assertThat(paged.contains(ids.get(i))).as("reserved, not filled").isFalse();
        if (i % 2 == 0) {
          ChunkLocation l = loc(i);
          assertThat(paged.fill(ids.get(i), l)).isEqualTo(resident.fill(ids.get(i), l)).isTrue();
        }
      }
      for (int i = 0; i < ids.size(); i++) {
        ChunkId id = ids.get(i);
        assertThat(paged.get(id)).isEqualTo(resident.get(id));
        if (i % 3 != 0) {
          PackId pack = new PackId(i % 7, 1);
          assertThat(paged.getInPack(pack, id)).isEqualTo(resident.getInPack(pack, id)).isNotNull();
          assertThat(paged.getInPack(new PackId(i % 7, 2), id)).isNull();
        }
      }
      assertThat(paged.memoryBytes()).isLessThanOrEqualTo(MIB);
    }
  }

  /**
   * A thread interrupted while it uses a paged index (an NBD reader being stopped) leaves it
   * working: its file is read and written through a RandomAccessFile, which an interrupt does not
   * close.
   */
  @Test
  void anInterruptedThreadLeavesTheIndexWorking() throws Exception {
    SplittableRandom r = new SplittableRandom(5);
    List<ChunkId> ids = new ArrayList<>();
    try (ChunkIndex index = new ChunkIndex(tmp, 50_000, MIB)) {
      for (int i = 0; i < 50_000; i++) {
        ChunkId id = id(r);
        ids.add(id);
        index.put(id, loc(i));
      }
      AtomicReference<Throwable> failure = new AtomicReference<>();
      Thread t =
          new Thread(
              () -> {
                Thread.currentThread().interrupt();
                try {
                  for (int i = 0; i < ids.size(); i++) {
                    if (!loc(i).equals(index.get(ids.get(i)))) {
                      throw new AssertionError("entry " + i);
                    }
                  }
                } catch (Throwable e) {
                  failure.set(e);
                }
              });
      t.start();
      t.join();
      assertThat(failure.get()).isNull();
      for (int i = 0; i < ids.size(); i++) {
        assertThat(index.get(ids.get(i))).isEqualTo(loc(i));
      }
    }
  }

  /**
   * A loader into a paged table sorts its entries into temporary files by part of the table and
   * inserts them at finish: same entries as one by one, first location wins (over entries already
   * in and among its own), entries visible only after finish, no file left. More entries than
   * expected still go in (the table grows).
   */
  @Test
  void aLoaderInsertsThroughSortedPartsAndLeavesNoFile() throws Exception {
    SplittableRandom r = new SplittableRandom(9);
    List<ChunkId> ids = new ArrayList<>();
    for (int i = 0; i < 80_000; i++) {
      ids.add(id(r));
    }
    try (ChunkIndex index = new ChunkIndex(tmp, 10_000, MIB)) {
      for (int i = 0; i < 10_000; i++) {
        index.put(ids.get(i), loc(i));
      }
      try (ChunkIndex.Loader load = index.loader(60_000)) {
        assertThat(index.resident()).as("grown for what is expected").isFalse();
        assertThat(load.parts()).as("sorted into parts of half the budget").isGreaterThan(2);
        for (int i = 5_000; i < 80_000; i++) {
          load.put(ids.get(i), loc(i + 1_000_000));
        }
        load.put(ids.get(20_000), loc(7)); // a second location for an id the loader has
        assertThat(index.contains(ids.get(30_000))).as("not before finish").isFalse();
        try (var files = Files.list(tmp)) {
          assertThat(files).as("parts are nameless: a crash leaves none").isEmpty();
        }
        load.finish();
      }
      assertThat(index.size()).isEqualTo(80_000);
      for (int i = 0; i < 80_000; i++) {
        assertThat(index.get(ids.get(i))).isEqualTo(i < 10_000 ? loc(i) : loc(i + 1_000_000));
      }
      assertThat(index.memoryBytes()).isLessThanOrEqualTo(MIB);
      try (var files = Files.list(tmp)) {
        assertThat(files.count()).as("only the table's own file").isEqualTo(0);
      }
    }
  }

  /** A loader closed before finish (its source failed) deletes its parts and inserts nothing. */
  @Test
  void aLoaderClosedUnfinishedLeavesNothing() throws Exception {
    SplittableRandom r = new SplittableRandom(13);
    try (ChunkIndex index = new ChunkIndex(tmp, 50_000, MIB)) {
      List<ChunkId> ids = new ArrayList<>();
      try (ChunkIndex.Loader load = index.loader(50_000)) {
        for (int i = 0; i < 50_000; i++) {
          ids.add(id(r));
          load.putInPack(ids.get(i), loc(i));
        }
      }
      try (var files = Files.list(tmp)) {
        assertThat(files).isEmpty();
      }
      assertThat(index.size()).isZero();
      assertThat(index.getInPack(loc(3).pack(), ids.get(3))).isNull();
    }
  }

  private static ChunkLocation randomLoc(SplittableRandom r) {
    return new ChunkLocation(
        new PackId(r.nextLong() | 1, r.nextLong()),
        r.nextLong(0x1_0000_0000L),
        r.nextInt(),
        r.nextInt(ChunkIndex.MAX_RAW_LENGTH + 1),
        r.nextInt(0x80));
  }

  /**
   * Random puts (some of ids present), reserves with and without fills, and loaders (some told a
   * quarter of what comes, so the table grows in finish), under budgets of 1 to 4 MiB, answer as a
   * map does after every round; memory within the budget; no file left.
   */
  @Test
  void answersAsAMapUnderRandomOperations() throws Exception {
    for (int seed = 0; seed < 12; seed++) {
      SplittableRandom r = new SplittableRandom(seed);
      long memory = MIB * (1 + r.nextInt(3)) + (r.nextBoolean() ? 0 : r.nextInt(1 << 20));
      Map<ChunkId, ChunkLocation> model = new HashMap<>();
      Map<ChunkId, Boolean> reservedModel = new HashMap<>();
      List<ChunkId> all = new ArrayList<>();
      try (ChunkIndex index = new ChunkIndex(tmp, r.nextInt(50_000), memory)) {
        for (int round = 0; round < 8; round++) {
          int op = r.nextInt(3);
          int n = 5_000 + r.nextInt(60_000);
          if (op == 0) {
            for (int i = 0; i < n; i++) {
              ChunkId id =
                  all.isEmpty() || r.nextInt(10) > 0 ? id(r) : all.get(r.nextInt(all.size()));
              ChunkLocation l = randomLoc(r);
              boolean expect = !model.containsKey(id) && !reservedModel.containsKey(id);
              assertThat(index.put(id, l)).isEqualTo(expect);
              if (expect) {
                model.put(id, l);
                all.add(id);
              }
            }
          } else if (op == 1) {
            for (int i = 0; i < n; i++) {
              ChunkId id = id(r);
              assertThat(index.reserve(id)).isTrue();
              reservedModel.put(id, true);
              all.add(id);
              if (r.nextBoolean()) {
                ChunkLocation l = randomLoc(r);
                assertThat(index.fill(id, l)).isTrue();
                reservedModel.remove(id);
                model.put(id, l);
              }
            }
          } else {
            long expected =
                r.nextBoolean() ? n : n / 4; // sometimes under-estimated: grows in finish
            try (ChunkIndex.Loader load = index.loader(expected)) {
              Map<ChunkId, ChunkLocation> pending = new HashMap<>();
              for (int i = 0; i < n; i++) {
                ChunkId id =
                    all.isEmpty() || r.nextInt(10) > 0 ? id(r) : all.get(r.nextInt(all.size()));
                ChunkLocation l = randomLoc(r);
                load.put(id, l);
                if (!model.containsKey(id)
                    && !reservedModel.containsKey(id)
                    && !pending.containsKey(id)) {
                  pending.put(id, l);
                }
              }
              load.finish();
              model.putAll(pending);
              all.addAll(pending.keySet());
            }
          }
          assertThat(index.size()).isEqualTo(model.size() + reservedModel.size());
          for (Map.Entry<ChunkId, ChunkLocation> e : model.entrySet()) {
            assertThat(index.get(e.getKey()))
                .as("seed %d round %d", seed, round)
                .isEqualTo(e.getValue());
          }
          for (ChunkId id : reservedModel.keySet()) {
            assertThat(index.contains(id)).isFalse();
          }
          assertThat(index.memoryBytes()).isLessThanOrEqualTo(Math.max(MIB, memory));
        }
      }
      try (var files = Files.list(tmp)) {
        assertThat(files).isEmpty();
      }
    }
  }

  /**
   * A paged table being scanned by a grow keeps one block of cache, however few frames it had, so
   * that the table it grows into takes the budget.
   */
  @Test
  void aScannedTableKeepsOneBlock() {
    SlotPages old = new SlotPages(tmp, 16 * MIB, 4 * MIB);
    assertThat(old.resident()).isFalse();
    old.write(0).putLong(old.pos, 1);
    old.beginScan();
    for (long off = 0; off < 16 * MIB; off += SlotPages.PAGE) {
      old.read(off);
    }
    long held = old.memoryBytes();
    old.close();
    assertThat(held).as("old table's memory during the scan").isLessThanOrEqualTo(MIB);
  }

  /**
   * A grow that fails half way (no room for the file of the table it grows into: here, the cache
   * directory replaced by a file) leaves the index failed, saying so, not half freed: its owner
   * (the repository) reloads it.
   */
  @Test
  void aFailedGrowLeavesTheIndexFailedNotBroken() throws Exception {
    Path dir = tmp.resolve("cache");
    SplittableRandom r = new SplittableRandom(1);
    ChunkLocation l = loc(1);
    try (ChunkIndex index = new ChunkIndex(dir, 0, 6_700_000)) {
      RepositoryException failed = null;
      for (int i = 0; i < 400_000 && failed == null; i++) {
        if (i == 50_000) { // resident, 4 MiB soon: the next grow pages through a file
          Files.delete(dir);
          Files.writeString(dir, "not a directory");
        }
        try {
          index.put(id(r), l);
        } catch (RepositoryException e) {
          failed = e;
        }
      }
      assertThat(failed).as("grow failed making its file").isNotNull();
      assertThat(failed.getMessage()).contains("free space there");
      assertThat(index.failed()).isTrue();
      assertThatThrownBy(() -> index.get(id(r)))
          .isInstanceOf(RepositoryException.class)
          .hasMessageContaining("unusable after an earlier failure");
    }
  }
}
