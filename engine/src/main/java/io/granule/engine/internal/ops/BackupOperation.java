package io.granule.engine.internal.ops;

import io.granule.engine.internal.image.HeldDiskImage;
import io.granule.engine.internal.image.ImageInspector;
import io.granule.engine.internal.image.LeasedDiskImage;
import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.SourceUnreadableException;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedStream;
import io.granule.engine.internal.repo.backup.BackupResult;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.SnapshotProvider;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A backup as the CLI and the REST API run it: open each disk through the format plugin that reads
 * it (holding a lease on that plugin), back them up into a new snapshot, close everything.
 *
 * <p>If a format plugin is updated or removed while the backup runs, the backup finishes on the old
 * version if it can within the drain timeout; otherwise its next read fails with {@link
 * io.granule.engine.internal.plugin.PluginUnavailableException} and no snapshot is written (the
 * manifest is written last).
 */
public final class BackupOperation {

  /**
   * One disk to back up.
   *
   * @param name the disk's name in the snapshot
   * @param path the image file or block device
   * @param format the format name, or null to detect it
   */
  public record DiskSpec(String name, Path path, String format) {
    public DiskSpec {
      Objects.requireNonNull(name, "name");
      Objects.requireNonNull(path, "path");
    }

    /**
     * Parses {@code [NAME=]FILE}; the default name is the file name without its directory.
     *
     * @throws IllegalArgumentException if the name is empty or holds '/' or ':'
     */
    public static DiskSpec parse(String spec, String format) {
      int eq = spec.indexOf('=');
      String name;
      Path path;
      if (eq > 0) {
        name = spec.substring(0, eq);
        path = Path.of(spec.substring(eq + 1));
      } else {
        path = Path.of(spec);
        Path fn = path.getFileName();
        name = fn == null ? spec : fn.toString();
      }
      checkName(name);
      return new DiskSpec(name, path, format);
    }

    static void checkName(String name) {
      if (name.isEmpty() || name.contains("/") || name.contains(":")) {
        throw new IllegalArgumentException(
            "invalid disk name '" + name + "': no '/' or ':' (use NAME=FILE)");
      }
    }
  }

  /**
   * One stream to back up with content-defined chunks (a database dump, WAL, a mail store export).
   *
   * @param name the stream's name in the snapshot
   * @param path the file to read, or {@code -} for standard input
   */
  public record StreamSpec(String name, String path) {
    /** Parses {@code NAME=FILE}; FILE may be {@code -} for standard input. */
    public static StreamSpec parse(String spec) {
      int eq = spec.indexOf('=');
      if (eq <= 0 || eq == spec.length() - 1) {
        throw new IllegalArgumentException(
            "invalid stream '" + spec + "': use NAME=FILE (FILE may be - for standard input)");
      }
      String name = spec.substring(0, eq);
      DiskSpec.checkName(name);
      return new StreamSpec(name, spec.substring(eq + 1));
    }
  }

  /**
   * Make the sources consistent while they are read.
   *
   * @param provider the snapshot provider's name, e.g. {@code fsfreeze}
   * @param targets what it acts on, e.g. the mount points to freeze
   * @param maxHold the longest it may hold (a frozen filesystem blocks every writer)
   */
  public record ConsistencySpec(String provider, List<Path> targets, Duration maxHold) {
    public ConsistencySpec {
      targets = List.copyOf(targets);
    }
  }

  private final PluginLeases<DiskImageFormat> formats;
  private final PluginLeases<SnapshotProvider> snapshotProviders;

  public BackupOperation(
      PluginLeases<DiskImageFormat> formats, PluginLeases<SnapshotProvider> snapshotProviders) {
    this.formats = formats;
    this.snapshotProviders = snapshotProviders;
  }

  /**
   * Backs up {@code disks} into {@code repository}.
   *
   * @throws IllegalArgumentException if two disks share a name
   */
  public BackupResult run(
      Repository repository,
      List<DiskSpec> disks,
      String host,
      List<String> tags,
      BackupListener listener) {
    return run(repository, disks, List.of(), null, host, tags, listener);
  }

  /**
   * Backs up {@code disks} and {@code streams} into one snapshot of {@code repository}.
   *
   * @throws IllegalArgumentException if two items share a name, or there is nothing to back up
   */
  public BackupResult run(
      Repository repository,
      List<DiskSpec> disks,
      List<StreamSpec> streams,
      ConsistencySpec consistency,
      String host,
      List<String> tags,
      BackupListener listener) {
    Map<String, DiskSpec> byName = new LinkedHashMap<>();
    for (DiskSpec d : disks) {
      DiskSpec.checkName(d.name());
      if (byName.put(d.name(), d) != null) {
        throw new IllegalArgumentException(
            "two disks are named '" + d.name() + "': name them apart with NAME=FILE");
      }
    }
    ImageInspector inspector = new ImageInspector(formats);
    List<LeasedDiskImage> opened = new ArrayList<>();
    List<InputStream> inputs = new ArrayList<>();
    try {
      List<NamedDisk> named = new ArrayList<>();
      for (DiskSpec d : byName.values()) {
        LeasedDiskImage img = inspector.open(d.path(), d.format());
        opened.add(img);
        named.add(new NamedDisk(d.name(), img));
      }
      List<NamedStream> namedStreams = new ArrayList<>();
      for (StreamSpec st : streams) {
        InputStream in = open(st);
        inputs.add(in);
        namedStreams.add(new NamedStream(st.name(), in));
      }
      if (consistency == null) {
        return repository.backup(
            new BackupRequest(named, namedStreams, host == null ? localHost() : host, tags, null),
            listener);
      }
      return backupHeld(repository, named, namedStreams, consistency, host, tags, listener);
    } finally {
      for (InputStream in : inputs) {
        try {
          in.close();
        } catch (IOException e) {
          // reading is over; a close failure of an input changes nothing stored
        }
      }
      closeAll(opened);
    }
  }

  private BackupResult backupHeld(
      Repository repository,
      List<NamedDisk> named,
      List<NamedStream> streams,
      ConsistencySpec c,
      String host,
      List<String> tags,
      BackupListener listener) {
    refuseTargetsHoldingOurFiles(repository, c);
    try (Lease<SnapshotProvider> lease = snapshotProviders.acquire(c.provider())) {
      SnapshotProvider.Hold hold;
      try {
        hold = lease.get().begin(c.targets(), c.maxHold());
      } catch (IOException e) {
        throw new ConsistencyException(
            c.provider() + ": unable to begin on " + c.targets() + ": " + e.getMessage(), e);
      }
      BackupResult result;
      try {
        List<NamedDisk> held = new ArrayList<>();
        for (NamedDisk d : named) {
          held.add(new NamedDisk(d.name(), new HeldDiskImage(d.image(), hold)));
        }
        result =
            repository.backup(
                new BackupRequest(held, streams, host == null ? localHost() : host, tags, null),
                listener);
      } catch (RuntimeException e) {
        IOException expired = null;
        try {
          hold.check();
        } catch (IOException x) {
          expired = x;
        }
        closeHold(hold, c, e);
        if (expired != null) {
          throw new ConsistencyException(expired.getMessage(), e);
        }
        throw e;
      }
      closeHold(hold, c, null);
      return result;
    }
  }

  private static void closeHold(SnapshotProvider.Hold hold, ConsistencySpec c, Exception pending) {
    try {
      hold.close();
    } catch (IOException | RuntimeException e) {
      ConsistencyException thaw =
          new ConsistencyException(
              c.provider()
                  + ": unable to release "
                  + c.targets()
                  + ": "
                  + e.getMessage()
                  + " (release them by hand, e.g. fsfreeze -u MOUNT)",
              e);
      if (pending != null) {
        pending.addSuppressed(thaw);
      } else {
        throw thaw;
      }
    }
  }

  /** Freezing the filesystem the repository lives on would deadlock the backup. */
  private static void refuseTargetsHoldingOurFiles(Repository repository, ConsistencySpec c) {
    String location = repository.store().location();
    Path repo = location.contains(":") ? null : Path.of(location);
    for (Path t : c.targets()) {
      try {
        if (repo != null
            && Files.exists(repo)
            && Files.exists(t)
            && Files.getFileStore(repo).equals(Files.getFileStore(t))) {
          throw new ConsistencyException(
              c.provider()
                  + ": the repository "
                  + repo
                  + " is on the same filesystem as "
                  + t
                  + "; keep the repository elsewhere",
              null);
        }
      } catch (IOException e) {
        throw new ConsistencyException(
            c.provider() + ": unable to examine " + t + ": " + e.getMessage(), e);
      }
    }
  }

  private static InputStream open(StreamSpec st) {
    if (st.path().equals("-")) {
      // Not closed by us: standard input belongs to the process.
      return new java.io.FilterInputStream(System.in) {
        @Override
        public void close() {}
      };
    }
    try {
      return new BufferedInputStream(Files.newInputStream(Path.of(st.path())), 1 << 20);
    } catch (IOException e) {
      throw new SourceUnreadableException(
          "unable to read stream '" + st.name() + "' from '" + st.path() + "': " + e, e);
    }
  }

  private static void closeAll(List<LeasedDiskImage> opened) {
    IOException first = null;
    for (LeasedDiskImage img : opened) {
      try {
        img.close();
      } catch (IOException e) {
        if (first == null) {
          first = e;
        }
      }
    }
    if (first != null) {
      throw new UncheckedIOException("unable to close a disk image: " + first.getMessage(), first);
    }
  }

  /** This machine's host name, as recorded in snapshots by default. */
  public static String localHost() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (IOException e) {
      return "localhost";
    }
  }
}
