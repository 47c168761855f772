package io.granule.engine.internal.ops;

import io.granule.engine.internal.app.ApplicationFailure;
import io.granule.engine.internal.app.ApplicationHolds;
import io.granule.engine.internal.image.FsFreeze;
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
import io.granule.engine.internal.repo.snapshot.ManifestReader;
import io.granule.engine.spi.ApplicationPlugin;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.SnapshotProvider;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.URI;
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
   * The longest freeze or application hold a backup may ask for: past it a limit means nothing, and
   * a huge one overflowed the watchdog's timer (the hold then had none).
   */
  public static final java.time.Duration MAX_HOLD = java.time.Duration.ofDays(1);

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

    /**
     * @throws IllegalArgumentException if {@code name} is empty or holds '/', ':' or a control or
     *     format character (listings print it to operators' terminals, audit12 storage L2)
     */
    public static void checkName(String name) {
      checkName("disk", name);
    }

    /** As {@link #checkName(String)} for a disk or stream ({@code what}). */
    public static void checkName(String what, String name) {
      if (name.isEmpty() || name.contains("/") || name.contains(":")) {
        throw new IllegalArgumentException(
            "invalid "
                + what
                + " name '"
                + name.replaceAll("\\p{Cc}|\\p{Cf}", "?")
                + "': no '/' or ':' (use NAME=FILE)");
      }
      checkLabel(what + " name", name);
    }
  }

  /**
   * Refuses a host name or tag holding control or format characters (escape sequences, a
   * right-to-left override): listings print them to operators' terminals.
   *
   * @throws IllegalArgumentException naming the label
   */
  public static void checkLabel(String what, String value) {
    if (value == null) {
      return;
    }
    for (int i = 0; i < value.length(); ) {
      int c = value.codePointAt(i);
      int type = Character.getType(c);
      if (type == Character.CONTROL || type == Character.FORMAT) {
        throw new IllegalArgumentException(
            "invalid "
                + what
                + " '"
                + value.replaceAll("\\p{Cc}|\\p{Cf}", "?")
                + "': it holds a control character (U+"
                + String.format(java.util.Locale.ROOT, "%04X", c)
                + "): use printable characters");
      }
      i += Character.charCount(c);
    }
  }

  /**
   * Refuses more disks or tags than a manifest may hold (readers treat one beyond as damaged).
   *
   * @throws IllegalArgumentException saying which
   */
  public static void checkCounts(int disks, int tags) {
    if (disks > ManifestReader.MAX_DISKS) {
      throw new IllegalArgumentException(
          disks + " disks: a snapshot holds at most " + ManifestReader.MAX_DISKS);
    }
    if (tags > ManifestReader.MAX_TAGS) {
      throw new IllegalArgumentException(
          tags + " tags: a snapshot holds at most " + ManifestReader.MAX_TAGS);
    }
  }

  /**
   * The disks by name, in order.
   *
   * @throws IllegalArgumentException if a name is invalid or two disks share one
   */
  public static Map<String, DiskSpec> checkNames(List<DiskSpec> disks) {
    Map<String, DiskSpec> byName = new LinkedHashMap<>();
    for (DiskSpec d : disks) {
      DiskSpec.checkName(d.name());
      if (byName.put(d.name(), d) != null) {
        throw new IllegalArgumentException(
            "two disks are named '" + d.name() + "': name them apart with NAME=FILE");
      }
    }
    return byName;
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
      DiskSpec.checkName("stream", name);
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

  /**
   * Applications to quiesce and catalog for the snapshot.
   *
   * @param urls their connection URLs, e.g. {@code postgres://backup@db1:5432/shop}
   * @param maxHold the longest each may stay quiesced
   */
  public record AppSpec(List<URI> urls, Duration maxHold) {
    public AppSpec {
      urls = List.copyOf(urls);
      Objects.requireNonNull(maxHold, "maxHold");
    }
  }

  private final PluginLeases<DiskImageFormat> formats;
  private final PluginLeases<SnapshotProvider> snapshotProviders;
  private final PluginLeases<ApplicationPlugin> applications;
  private boolean changeTracking;
  private final List<String> notes = new ArrayList<>();

  public BackupOperation(
      PluginLeases<DiskImageFormat> formats, PluginLeases<SnapshotProvider> snapshotProviders) {
    this(formats, snapshotProviders, null);
  }

  public BackupOperation(
      PluginLeases<DiskImageFormat> formats,
      PluginLeases<SnapshotProvider> snapshotProviders,
      PluginLeases<ApplicationPlugin> applications) {
    this.formats = formats;
    this.snapshotProviders = snapshotProviders;
    this.applications = applications;
  }

  /**
   * Use the change tracking images carry (qcow2 persistent dirty bitmaps): read only what changed
   * since the previous snapshot of the same disk from the same host, and leave a new bitmap for the
   * next backup. See {@link ChangeTrackingPlan}.
   */
  public BackupOperation withChangeTracking(boolean on) {
    this.changeTracking = on;
    return this;
  }

  /** Locks a disk a backup is about to read against writers of it (restores in place). */
  @FunctionalInterface
  public interface ReadLocks {
    /**
     * @return what releases the lock
     * @throws RuntimeException naming the writer, if the disk is being written
     */
    java.io.Closeable lock(Path disk) throws IOException;
  }

  private ReadLocks readLocks = disk -> () -> {};

  /**
   * Hold {@code locks} on every disk while it is read: a restore writing it in place meanwhile
   * would leave a snapshot that is a mix of two disks.
   */
  public BackupOperation withReadLocks(ReadLocks locks) {
    this.readLocks = java.util.Objects.requireNonNull(locks);
    return this;
  }

  /** What the last run had to say to a person (e.g. why a disk was read in full). */
  public List<String> notes() {
    return List.copyOf(notes);
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
    return run(repository, disks, streams, consistency, null, host, tags, listener);
  }

  /**
   * Backs up {@code disks} and {@code streams} into one snapshot of {@code repository}, with the
   * applications of {@code apps} quiesced and cataloged: quiesce apps, freeze filesystems, read the
   * disks, thaw, release apps (collecting what they captured), store, write the manifest. A failure
   * at any step releases every quiesced application and thaws every frozen filesystem; the
   * exception names the step.
   *
   * @param apps the applications, or null for none
   * @throws IllegalArgumentException if two items share a name, or there is nothing to back up
   * @throws ApplicationFailure if an application step fails
   * @throws ConsistencyException if a freeze or thaw fails or a hold passes its time limit
   */
  public BackupResult run(
      Repository repository,
      List<DiskSpec> disks,
      List<StreamSpec> streams,
      ConsistencySpec consistency,
      AppSpec apps,
      String host,
      List<String> tags,
      BackupListener listener) {
    notes.clear();
    checkCounts(disks == null ? 0 : disks.size(), tags == null ? 0 : tags.size());
    checkLabel("host", host);
    for (String t : tags == null ? List.<String>of() : tags) {
      checkLabel("tag", t);
    }
    Map<String, DiskSpec> byName = checkNames(disks);
    for (StreamSpec st : streams == null ? List.<StreamSpec>of() : streams) {
      DiskSpec.checkName("stream", st.name());
    }
    if (apps != null && !apps.urls().isEmpty() && applications == null) {
      throw new IllegalStateException("no application plugins in this context");
    }
    ImageInspector inspector = new ImageInspector(formats);
    List<LeasedDiskImage> opened = new ArrayList<>();
    List<java.io.Closeable> locks = new ArrayList<>();
    List<InputStream> inputs = new ArrayList<>();
    ChangeTrackingPlan cbt = null;
    boolean succeeded = false;
    ApplicationHolds holds =
        new ApplicationHolds(
            applications,
            apps == null ? List.of() : apps.urls(),
            apps == null ? Duration.ZERO : apps.maxHold());
    try {
      List<NamedDisk> named = new ArrayList<>();
      Map<String, String> untrackable = new java.util.HashMap<>();
      for (DiskSpec d : byName.values()) {
        try {
          SourceAccess.checkPath(d.path());
        } catch (IOException e) {
          throw new UncheckedIOException(
              "unable to check backup source '" + d.path() + "': " + e.getMessage(), e);
        }
        try {
          locks.add(readLocks.lock(d.path()));
        } catch (java.nio.file.FileSystemException e) {
          // not there, denied, not a directory on the way: opening it says so, in its words
        } catch (IOException e) {
          throw new UncheckedIOException(
              "unable to lock disk '" + d.path() + "' for reading: " + e.getMessage(), e);
        }
        // the image and the files behind it (a qcow2's backing chain, a VMDK's extents), opened
        // as those who can change what it names (only what they could read), then locked
        LeasedDiskImage img;
        try {
          img = SourceAccess.open(d.path(), () -> inspector.open(d.path(), d.format()));
        } catch (IOException e) {
          throw new UncheckedIOException(
              "unable to check the files of backup source '" + d.path() + "': " + e.getMessage(),
              e);
        }
        opened.add(img);
        String looks = d.format() == null ? inspector.readAsRaw(d.path()) : null;
        if (looks != null) {
          notes.add(
              "disk "
                  + d.name()
                  + ": "
                  + d.path()
                  + " looks like "
                  + looks
                  + "; read as raw: give --format "
                  + looks
                  + " to read it as "
                  + looks);
        }
        for (Path f : img.files()) {
          if (!f.equals(d.path())) {
            try {
              locks.add(readLocks.lock(f));
            } catch (IOException e) {
              throw new UncheckedIOException(
                  "unable to lock '"
                      + f
                      + "', a file of disk '"
                      + d.path()
                      + "', for reading: "
                      + e.getMessage(),
                  e);
            }
          }
        }
        named.add(new NamedDisk(d.name(), img));
        if (changeTracking && img.changeTracking() != null) {
          String why = SourceAccess.untrackable(d.path());
          if (why != null) {
            untrackable.put(d.name(), why);
          }
        }
      }
      String recordedHost = host == null ? localHost() : host;
      if (changeTracking) {
        cbt = ChangeTrackingPlan.prepare(repository, named, recordedHost, untrackable);
        named = cbt.disks();
        notes.addAll(cbt.notes());
      }
      List<NamedStream> namedStreams = new ArrayList<>();
      for (StreamSpec st : streams) {
        InputStream in = open(st);
        inputs.add(in);
        namedStreams.add(new NamedStream(st.name(), in));
      }
      if (consistency != null) {
        refuseTargetsHoldingOurFiles(repository, consistency);
      }
      // Quiesce apps → freeze → read the disks → thaw → release apps → store → manifest.
      holds.quiesce();
      notes.addAll(holds.coverageNotes(byName.values().stream().map(DiskSpec::path).toList()));
      String parent = cbt == null ? null : cbt.parent();
      BackupResult result;
      if (consistency == null) {
        result =
            repository.backup(
                new BackupRequest(
                    named,
                    namedStreams,
                    recordedHost,
                    tags,
                    parent,
                    holds.isEmpty() ? null : holds::release),
                listener);
      } else {
        result =
            backupHeld(
                repository,
                named,
                namedStreams,
                consistency,
                holds,
                recordedHost,
                parent,
                tags,
                listener);
      }
      succeeded = true;
      return result;
    } finally {
      holds.close();
      if (cbt != null) {
        notes.addAll(cbt.finish(succeeded));
      }
      for (InputStream in : inputs) {
        try {
          in.close();
        } catch (IOException e) {
          // reading is over; a close failure of an input changes nothing stored
        }
      }
      try {
        closeAll(opened);
      } finally {
        for (java.io.Closeable l : locks) {
          try {
            l.close();
          } catch (IOException e) {
            // released when this process ends; the backup itself is done
          }
        }
      }
    }
  }

  private BackupResult backupHeld(
      Repository repository,
      List<NamedDisk> named,
      List<NamedStream> streams,
      ConsistencySpec c,
      ApplicationHolds holds,
      String host,
      String parent,
      List<String> tags,
      BackupListener listener) {
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
          held.add(d.withImage(new HeldDiskImage(d.image(), hold)));
        }
        // Once every disk byte is read: check the holds lasted, thaw, then release the apps.
        BackupRequest.AfterDisks after =
            () -> {
              try {
                hold.check();
              } catch (IOException x) {
                throw new ConsistencyException(x.getMessage(), x);
              }
              holds.check();
              closeHold(hold, c, null);
              return holds.isEmpty()
                  ? new BackupRequest.Extras(List.of(), Map.of())
                  : holds.release();
            };
        result =
            repository.backup(
                new BackupRequest(
                    held, streams, host == null ? localHost() : host, tags, null, after),
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

  /**
   * Freezing the filesystem the repository lives on would deadlock the backup; so would freezing
   * the one holding this process's log, temporary files or caches, or the root filesystem (where
   * every process of the machine writes): their writes would block until the freeze's limit, and a
   * log written before the watchdog started blocked the thaw itself.
   */
  private static void refuseTargetsHoldingOurFiles(Repository repository, ConsistencySpec c) {
    String location = repository.store().location();
    Path repo = location.contains(":") ? null : Path.of(location);
    Map<String, Path> ours = new LinkedHashMap<>(FsFreeze.ownFiles());
    ours.put("the chunk index cache", Repository.defaultCacheDir());
    for (Path t : c.targets()) {
      if (Files.exists(t)) {
        for (Map.Entry<String, Path> e : ours.entrySet()) {
          Path existing = existingAncestor(e.getValue());
          try {
            if (existing != null && sameFilesystem(existing, t)) {
              throw new ConsistencyException(
                  c.provider()
                      + ": refusing to freeze "
                      + t
                      + ": it is on the filesystem of "
                      + e.getKey()
                      + " ("
                      + e.getValue()
                      + "), which would hang until the freeze's limit; name the mount point of"
                      + " the application's own filesystem",
                  null);
            }
          } catch (IOException ex) {
            // cannot tell: the repository check below still runs
          }
        }
      }
      try {
        if (repo != null && Files.exists(repo) && Files.exists(t) && sameFilesystem(repo, t)) {
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

  /**
   * Whether {@code a} and {@code b} are on one filesystem: the same device (a bind mount of a
   * filesystem is another mount entry, which {@code FileStore.equals} told apart, but the same
   * device, and freezing either freezes both), or the same mount.
   */
  private static boolean sameFilesystem(Path a, Path b) throws IOException {
    return Files.getAttribute(a, "unix:dev").equals(Files.getAttribute(b, "unix:dev"))
        || Files.getFileStore(a).equals(Files.getFileStore(b));
  }

  /** {@code p} or its nearest ancestor that exists, or null. */
  private static Path existingAncestor(Path p) {
    for (Path a = p.toAbsolutePath(); a != null; a = a.getParent()) {
      if (Files.exists(a)) {
        return a;
      }
    }
    return null;
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
