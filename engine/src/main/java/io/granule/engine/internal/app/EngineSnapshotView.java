package io.granule.engine.internal.app;

import io.granule.engine.internal.ops.FileBrowser;
import io.granule.engine.internal.ops.FileRestorer;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.internal.volume.Partition;
import io.granule.engine.internal.volume.PartitionTable;
import io.granule.engine.internal.volume.PartitionTableReader;
import io.granule.engine.spi.ApplicationRecord;
import io.granule.engine.spi.FileSystem;
import io.granule.engine.spi.FileSystemType;
import io.granule.engine.spi.SnapshotView;
import java.io.Closeable;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine's {@link SnapshotView}: the snapshot's disks read in place from the repository, every
 * filesystem on them found by the filesystem plugins, and the files application plugins captured.
 * Closing it closes every filesystem, disk and plugin lease it opened.
 */
public final class EngineSnapshotView implements SnapshotView, Closeable {
  private static final Logger LOG = LoggerFactory.getLogger(EngineSnapshotView.class);

  private final Repository repository;
  private final Manifest snapshot;
  private final PluginLeases<FileSystemType> types;
  private final List<SnapshotDisk> disks = new ArrayList<>();
  private final List<Closeable> toClose = new ArrayList<>();
  private final AtomicLong streamBytes = new AtomicLong();
  private List<Volume> volumes;

  public EngineSnapshotView(
      Repository repository, Manifest snapshot, PluginLeases<FileSystemType> types) {
    this.repository = repository;
    this.snapshot = snapshot;
    this.types = types;
  }

  private record EngineVolume(String disk, String partition, String type, FileSystem fileSystem)
      implements Volume {}

  @Override
  public String id() {
    return snapshot.id();
  }

  @Override
  public Instant time() {
    return snapshot.instant();
  }

  @Override
  public String host() {
    return snapshot.host();
  }

  @Override
  public synchronized List<Volume> volumes() throws IOException {
    if (volumes != null) {
      return volumes;
    }
    List<Volume> found = new ArrayList<>();
    for (Manifest.DiskEntry d : snapshot.disks()) {
      SnapshotDisk disk = repository.openDisk(snapshot, d.name());
      disks.add(disk);
      PartitionTable table;
      try {
        table = PartitionTableReader.read(disk);
      } catch (IOException e) {
        LOG.warn("disk '{}': no readable partition table: {}", d.name(), e.getMessage());
        continue;
      }
      for (Partition p : table.partitions()) {
        io.granule.engine.internal.volume.Volume v = PartitionTable.volume(disk, p);
        Lease<FileSystemType> best = FileBrowser.detect(types, v);
        if (best == null) {
          continue;
        }
        toClose.add(best::close);
        try {
          FileSystem fs = best.get().open(v);
          toClose.add(fs);
          String part = Partition.WHOLE_DISK.equals(p.name()) ? null : p.name();
          found.add(new EngineVolume(d.name(), part, best.name(), fs));
        } catch (IOException e) {
          LOG.warn("disk '{}' {}: {}: {}", d.name(), p.name(), best.name(), e.getMessage());
        }
      }
    }
    volumes = List.copyOf(found);
    return volumes;
  }

  @Override
  public InputStream openCaptured(ApplicationRecord record, String name) throws IOException {
    String stream = StoredApplication.prefix(record.plugin(), record.instance()) + name;
    if (!record.files().contains(name) || snapshot.stream(stream) == null) {
      throw new NoSuchFileException(
          stream, null, "snapshot " + snapshot.id().substring(0, 12) + " holds no such file");
    }
    InputStream in = repository.openStream(snapshot, stream);
    return new FilterInputStream(in) {
      @Override
      public int read() throws IOException {
        int b = super.read();
        if (b >= 0) {
          streamBytes.incrementAndGet();
        }
        return b;
      }

      @Override
      public int read(byte[] b, int off, int len) throws IOException {
        int n = super.read(b, off, len);
        if (n > 0) {
          streamBytes.addAndGet(n);
        }
        return n;
      }
    };
  }

  @Override
  public long extract(Volume volume, String path, Path target, Predicate<String> include)
      throws IOException {
    if (!(volume instanceof EngineVolume v)) {
      throw new IllegalArgumentException("not a volume of this snapshot: " + volume);
    }
    return new FileRestorer(v.fileSystem(), target)
        .include(include)
        .durable(false)
        .restoreContents(path)
        .bytes();
  }

  @Override
  public synchronized long bytesFetched() {
    long n = streamBytes.get();
    for (SnapshotDisk d : disks) {
      n += d.bytesFetched();
    }
    return n;
  }

  @Override
  public synchronized long chunksFetched() {
    long n = 0;
    for (SnapshotDisk d : disks) {
      n += d.chunksFetched();
    }
    return n;
  }

  @Override
  public long diskBytes() {
    return snapshot.disks().stream().mapToLong(Manifest.DiskEntry::size).sum();
  }

  /**
   * The number of chunks holding data (not zero) of the disks opened so far: what a whole-disk
   * restore of them would fetch.
   */
  public synchronized long dataChunks() {
    long n = 0;
    for (SnapshotDisk d : disks) {
      var fi = d.fixedIndex();
      for (int i = 0; i < fi.count(); i++) {
        if (!io.granule.engine.internal.repo.ChunkId.ZERO.equals(fi.get(i))) {
          n++;
        }
      }
    }
    return n;
  }

  @Override
  public synchronized void close() {
    for (int i = toClose.size() - 1; i >= 0; i--) {
      try {
        toClose.get(i).close();
      } catch (IOException | RuntimeException e) {
        LOG.debug("closing: {}", e.toString());
      }
    }
    toClose.clear();
    for (SnapshotDisk d : disks) {
      d.close();
    }
    disks.clear();
  }
}
