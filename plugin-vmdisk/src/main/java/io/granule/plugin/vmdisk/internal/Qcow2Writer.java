package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;

/**
 * Writes a qcow2 version 3 image (compat 1.1, 16-bit refcounts, no backing file, no extensions) in
 * one pass.
 *
 * <p>Layout, in clusters: the header (cluster 0), the L1 table, then data clusters in guest order
 * with each L2 table appended as soon as its range is passed, then the refcount blocks and the
 * refcount table. Every cluster of the file is used exactly once, so every refcount is 1 and every
 * L1 and L2 entry carries the COPIED flag. The L1 table, the refcount structures and finally the
 * header are written by {@link #finish}: until then cluster 0 is zeros and the file is not a qcow2
 * image.
 *
 * <p>Options: {@code cluster_size} (4k to 2M, default 64k).
 */
final class Qcow2Writer extends SparseImageWriter {
  static final int DEFAULT_CLUSTER_SIZE = 64 << 10;
  private static final int MAGIC = 0x514649fb;
  private static final long COPIED = 1L << 63;
  private static final int HEADER_LENGTH = 104;
  private static final int REFCOUNT_ORDER = 4;

  private final int clusterBits;
  private final int l2Entries;
  private final long[] l1;
  private final long l1Clusters;
  private final ByteBuffer l2;
  private long l2Index = -1;
  private long nextCluster;

  private Qcow2Writer(Path path, long virtualSize, int clusterSize) throws IOException {
    super(path, virtualSize, clusterSize);
    clusterBits = Integer.numberOfTrailingZeros(clusterSize);
    l2Entries = clusterSize / 8;
    long guestClusters = ceilDiv(virtualSize, clusterSize);
    long l1Size = ceilDiv(guestClusters, l2Entries);
    // qemu refuses L1 tables over 32 MiB (QCOW_MAX_L1_SIZE).
    if (l1Size * 8 > 32L << 20) {
      throw new IllegalArgumentException(
          "a qcow2 image with "
              + clusterSize
              + "-byte clusters cannot hold "
              + virtualSize
              + " bytes; use larger clusters");
    }
    l1 = new long[(int) l1Size];
    l1Clusters = Math.max(1, ceilDiv(l1Size * 8, clusterSize));
    l2 = ByteBuffer.allocate(clusterSize).order(ByteOrder.BIG_ENDIAN);
    nextCluster = 1 + l1Clusters;
  }

  /** Creates {@code path} for a disk of {@code virtualSize} bytes, a multiple of 512. */
  static Qcow2Writer create(Path path, long virtualSize, Map<String, String> options)
      throws IOException {
    checkOptions("qcow2", options, Set.of("cluster_size"));
    if (virtualSize % 512 != 0) {
      // QEMU rounds a qcow2 image's size down to whole sectors: the restore exited 0 and the
      // disk's last bytes were gone (audit15 G F3)
      throw new IllegalArgumentException(
          "a qcow2 image holds a whole number of 512-byte sectors (QEMU drops the rest); the disk"
              + " has "
              + virtualSize
              + " bytes: restore it as raw");
    }
    int cs = sizeOption("qcow2", options, "cluster_size", DEFAULT_CLUSTER_SIZE, 4096, 2 << 20);
    return new Qcow2Writer(path, virtualSize, cs);
  }

  private static long ceilDiv(long a, long b) {
    return (a + b - 1) / b;
  }

  private long offsetOf(long cluster) {
    return cluster << clusterBits;
  }

  @Override
  void writeCluster(long index, ByteBuffer data) throws IOException {
    long table = index / l2Entries;
    if (table != l2Index) {
      flushL2();
      l2Index = table;
    }
    long off = offsetOf(nextCluster++);
    writeData("data cluster", data, off);
    l2.putLong((int) (index % l2Entries) * 8, off | COPIED);
  }

  private void flushL2() throws IOException {
    if (l2Index < 0) {
      return;
    }
    long off = offsetOf(nextCluster++);
    writeAt("L2 table", l2.clear(), off);
    l1[(int) l2Index] = off | COPIED;
    l2.clear();
    while (l2.hasRemaining()) {
      l2.putLong(0);
    }
    l2Index = -1;
  }

  @Override
  void finishImage() throws IOException {
    flushL2();
    int clusterSize = clusterSize();
    long perBlock = (long) clusterSize * 8 / (1 << REFCOUNT_ORDER);
    long used = nextCluster;
    long blocks = 0;
    long tableClusters = 0;
    // The refcount structures count themselves: grow until the counts stop changing.
    while (true) {
      long total = used + blocks + tableClusters;
      long b = ceilDiv(total, perBlock);
      long t = ceilDiv(b * 8, clusterSize);
      if (b == blocks && t == tableClusters) {
        break;
      }
      blocks = b;
      tableClusters = t;
    }
    long total = used + blocks + tableClusters;
    // Only the bytes that matter are written, so the rest of each metadata cluster stays a hole.
    ByteBuffer table = ByteBuffer.allocate(Math.toIntExact(blocks * 8)).order(ByteOrder.BIG_ENDIAN);
    for (long k = 0; k < blocks; k++) {
      long counted = Math.min(perBlock, total - k * perBlock);
      ByteBuffer block =
          ByteBuffer.allocate(Math.toIntExact((counted * 2 + 7) / 8 * 8))
              .order(ByteOrder.BIG_ENDIAN);
      for (long c = 0; c < counted; c++) {
        block.putShort((short) 1);
      }
      long off = offsetOf(used + k);
      writeAt("refcount block", block.clear(), off);
      table.putLong(off);
    }
    long tableOffset = offsetOf(used + blocks);
    writeAt("refcount table", table.flip(), tableOffset);
    ByteBuffer l1Bytes = ByteBuffer.allocate(l1.length * 8).order(ByteOrder.BIG_ENDIAN);
    for (long e : l1) {
      l1Bytes.putLong(e);
    }
    writeAt("L1 table", l1Bytes.flip(), offsetOf(1));
    // The file ends with the last cluster it counts.
    writeAt("end of file", ByteBuffer.allocate(1), offsetOf(total) - 1);
    force("data and tables");
    ByteBuffer h = ByteBuffer.allocate(HEADER_LENGTH + 8).order(ByteOrder.BIG_ENDIAN);
    h.putInt(0, MAGIC);
    h.putInt(4, 3);
    h.putInt(20, clusterBits);
    h.putLong(24, virtualSize());
    h.putInt(36, l1.length);
    h.putLong(40, offsetOf(1));
    h.putLong(48, tableOffset);
    h.putInt(56, (int) tableClusters);
    h.putInt(96, REFCOUNT_ORDER);
    h.putInt(100, HEADER_LENGTH);
    // Bytes 104..111 stay zero: the end-of-extensions marker.
    writeAt("header", h, 0);
    force("header");
  }
}
