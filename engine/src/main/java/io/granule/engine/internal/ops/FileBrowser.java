package io.granule.engine.internal.ops;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.SnapshotNotFoundException;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import io.granule.engine.internal.volume.Partition;
import io.granule.engine.internal.volume.PartitionTable;
import io.granule.engine.internal.volume.PartitionTableReader;
import io.granule.engine.internal.volume.Volume;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.FileSystemType;
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * Opens the filesystem on a disk of a snapshot, in-process and read-only, fetching only the chunks
 * that hold what is read: {@code SNAP[:DISK[/PART]]} → snapshot, disk, partition, filesystem.
 *
 * <p>With one disk, DISK may be left out; with one partition holding a filesystem (or no partition
 * table), PART may be left out. The filesystem type is detected by every {@link FileSystemType}
 * plugin probing the volume.
 */
public final class FileBrowser implements Closeable {

  /** A filesystem could not be found or opened; the message says where and what to name. */
  public static final class NoFileSystemException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public NoFileSystemException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private final Manifest snapshot;
  private final SnapshotDisk disk;
  private final Volume volume;
  private final FileSystem fs;
  private final Lease<FileSystemType> lease;
  private final PartitionTable table;

  private FileBrowser(
      Manifest snapshot,
      SnapshotDisk disk,
      PartitionTable table,
      Volume volume,
      FileSystem fs,
      Lease<FileSystemType> lease) {
    this.snapshot = snapshot;
    this.disk = disk;
    this.table = table;
    this.volume = volume;
    this.fs = fs;
    this.lease = lease;
  }

  /**
   * Opens {@code ref} = {@code SNAP[:DISK[/PART]]}.
   *
   * @throws SnapshotNotFoundException if the snapshot, disk or partition does not exist
   * @throws NoFileSystemException if no plugin recognises a filesystem there
   */
  public static FileBrowser open(
      Repository repository, String ref, PluginLeases<FileSystemType> types) {
    return open(repository, ref, SnapshotFilter.ANY, types);
  }

  /**
   * Opens {@code ref} = {@code SNAP[:DISK[/PART]]} among the snapshots {@code filter} passes
   * ({@code latest}: the latest of them holding DISK, if named).
   *
   * @throws SnapshotNotFoundException if the snapshot, disk or partition does not exist
   * @throws NoFileSystemException if no plugin recognises a filesystem there
   */
  public static FileBrowser open(
      Repository repository,
      String ref,
      SnapshotFilter filter,
      PluginLeases<FileSystemType> types) {
    int colon = ref.indexOf(':');
    String snapRef = colon < 0 ? ref : ref.substring(0, colon);
    String rest = colon < 0 ? null : ref.substring(colon + 1);
    String diskName = rest;
    String partName = null;
    if (rest != null && rest.indexOf('/') >= 0) {
      diskName = rest.substring(0, rest.indexOf('/'));
      partName = rest.substring(rest.indexOf('/') + 1);
    }
    Manifest snap = repository.resolve(snapRef, filter, diskName);
    if (diskName == null || diskName.isEmpty()) {
      if (snap.disks().size() != 1) {
        throw new SnapshotNotFoundException(
            "snapshot "
                + snap.id().substring(0, 12)
                + " has "
                + snap.disks().size()
                + " disks: name one as SNAP:DISK ("
                + String.join(", ", snap.disks().stream().map(Manifest.DiskEntry::name).toList())
                + ")");
      }
      diskName = snap.disks().get(0).name();
    }
    SnapshotDisk disk = repository.openDisk(snap, diskName);
    try {
      PartitionTable table = PartitionTableReader.read(disk);
      List<Partition> candidates;
      if (partName != null && !partName.isEmpty()) {
        try {
          candidates = List.of(table.partition(partName));
        } catch (NoSuchElementException e) {
          throw new SnapshotNotFoundException(
              "disk '"
                  + diskName
                  + "' of snapshot "
                  + snap.id().substring(0, 12)
                  + ": "
                  + e.getMessage());
        }
      } else {
        candidates = table.partitions();
      }
      List<String> found = new ArrayList<>();
      FileBrowser chosen = null;
      for (Partition p : candidates) {
        Volume v = PartitionTable.volume(disk, p);
        Lease<FileSystemType> best = detect(types, v);
        if (best == null) {
          continue;
        }
        found.add(p.name() + " (" + best.name() + ")");
        if (chosen == null) {
          try {
            chosen = new FileBrowser(snap, disk, table, v, best.get().open(v), best);
          } catch (IOException e) {
            best.close();
            throw new NoFileSystemException(
                "disk '" + diskName + "' partition " + p.name() + ": " + e.getMessage(), e);
          }
        } else {
          best.close();
        }
      }
      if (chosen == null) {
        throw new NoFileSystemException(
            "no filesystem found on disk '"
                + diskName
                + "' of snapshot "
                + snap.id().substring(0, 12)
                + (partName == null ? "" : " partition " + partName)
                + " (partitions: "
                + String.join(", ", table.partitions().stream().map(Partition::name).toList())
                + "; filesystem types: "
                + String.join(", ", types.names())
                + ")",
            null);
      }
      if (found.size() > 1 && partName == null) {
        chosen.close();
        throw new NoFileSystemException(
            "disk '"
                + diskName
                + "' has several filesystems: "
                + String.join(", ", found)
                + "; name one as SNAP:"
                + diskName
                + "/PART",
            null);
      }
      return chosen;
    } catch (IOException e) {
      disk.close();
      throw new UncheckedIOException(
          "unable to read the partition table of disk '" + diskName + "': " + e.getMessage(), e);
    } catch (RuntimeException e) {
      disk.close();
      throw e;
    }
  }

  /**
   * The filesystem type that probes {@code v} with the highest score, leased, or null if none
   * recognises it; every other lease is closed.
   */
  public static Lease<FileSystemType> detect(PluginLeases<FileSystemType> types, Volume v)
      throws IOException {
    Lease<FileSystemType> best = null;
    int bestScore = 0;
    for (Lease<FileSystemType> l : types.acquireAll()) {
      int score;
      try {
        score = l.get().probe(v);
      } catch (IOException e) {
        score = 0;
      }
      if (score > bestScore) {
        if (best != null) {
          best.close();
        }
        best = l;
        bestScore = score;
      } else {
        l.close();
      }
    }
    return best;
  }

  public Manifest snapshot() {
    return snapshot;
  }

  public SnapshotDisk disk() {
    return disk;
  }

  public Volume volume() {
    return volume;
  }

  public PartitionTable partitionTable() {
    return table;
  }

  /** The filesystem; valid until {@link #close}. Each use checks the plugin lease. */
  public FileSystem fileSystem() {
    lease.check();
    return fs;
  }

  /** The filesystem type's name, e.g. {@code ext4}. */
  public String type() {
    return lease.name();
  }

  /** Chunks of the disk read so far, and how many hold data at all. */
  public long chunksFetched() {
    return disk.chunksFetched();
  }

  /** The disk's chunks that hold data (not zero). */
  public long chunksWithData() {
    FixedIndex fi = disk.fixedIndex();
    long n = 0;
    for (int i = 0; i < fi.count(); i++) {
      if (!ChunkId.ZERO.equals(fi.get(i))) {
        n++;
      }
    }
    return n;
  }

  @Override
  public void close() {
    try {
      fs.close();
    } catch (IOException e) {
      // read-only: nothing to lose
    } finally {
      lease.close();
      disk.close();
    }
  }
}
