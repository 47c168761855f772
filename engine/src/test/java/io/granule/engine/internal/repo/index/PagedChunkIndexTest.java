package io.granule.engine.internal.repo.index;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A chunk index larger than its memory budget: paged through its file, same answers. */
class PagedChunkIndexTest {
  private static final long MIB = 1 << 20;

  @TempDir Path tmp;

  private static ChunkId id(SplittableRandom r) {
    return new ChunkId(r.nextLong(), r.nextLong(), r.nextLong(), r.nextLong());
  }

  private static ChunkLocation loc(int i) {
    return new ChunkLocation(new PackId(i, ~i), i * 1000L + 8, 500 + i % 1000, 1 << 20, i & 1);
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
        for (int i = 5_000; i < 80_000; i++) {
          load.put(ids.get(i), loc(i + 1_000_000));
        }
        load.put(ids.get(20_000), loc(7)); // a second location for an id the loader has
        assertThat(index.contains(ids.get(30_000))).as("not before finish").isFalse();
        try (var files = Files.list(tmp)) {
          assertThat(files.count()).as("parts written").isGreaterThan(2);
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
}
