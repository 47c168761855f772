package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.RestoreTargetException;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import io.granule.engine.spi.DiskImageWriter;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes a disk of a snapshot to a file or block device. On a target that does not exist yet, zero
 * chunks are skipped and the file is sparse; on an existing file or device they are written as
 * zeros, so no old byte survives. A regular file is cut (or extended) to the disk size first; a
 * device must be at least as large. Data is fsynced before returning.
 *
 * <p>Raw targets: {@link #WRITERS} threads each take the next run of adjacent chunks of one kind
 * (data, or zeros on an existing target; up to {@link #MAX_WRITE} bytes), fetch, check and
 * decompress its chunks straight into their own aligned buffer, and write the run at its offset
 * ({@link RawTarget}: direct writes, except short ones to a file, which go through the page cache
 * with early write-back). Runs are written in any order (their offsets are fixed), so the disk gets
 * writes while other threads decode, and memory stays at one buffer per thread whatever the disk
 * size.
 *
 * <p>A damaged chunk stops the restore with a {@code RepositoryCorruptedException} naming the chunk
 * and the snapshot (the one at the lowest offset when several threads fail); what was written so
 * far stays in the target, which must then not be trusted.
 *
 * <p>{@link #restore(SnapshotDisk, DiskImageWriter, Path)} writes an image file of another format
 * (qcow2, VMDK, VHDX) through a format plugin's writer instead ({@link ImageTarget}): the same
 * threads fetch and decode runs of non-zero chunks, and hand them to the writer in order on the
 * calling thread; the image is complete only once the writer has finished.
 */
public final class DiskRestorer {
  /**
   * Threads that fetch and decode runs, and so writes in flight to a raw target (an image target
   * takes one at a time); property {@code granule.restore.writers}, for measurements.
   */
  static final int WRITERS =
      Math.max(1, Math.min(64, Integer.getInteger("granule.restore.writers", 3)));

  /**
   * The largest write to a raw target, in bytes: adjacent chunks are gathered up to it (a chunk is
   * never split). Property {@code granule.restore.write-bytes}, for measurements.
   */
  static final int MAX_WRITE =
      Math.max(
          4096, Math.min(64 << 20, Integer.getInteger("granule.restore.write-bytes", 16 << 20)));

  /**
   * The shortest write that goes direct to a regular file (property {@code
   * granule.restore.direct-min-bytes}) where its blocks could not be allocated ahead ({@link
   * RawTarget#reserve}): ext4 serializes direct writes that allocate blocks, so a short one leaves
   * the disk's queue nearly empty while it runs, and goes through the page cache instead, where
   * write-back sends it with others.
   */
  static final int MIN_DIRECT_FILE =
      Math.max(0, Integer.getInteger("granule.restore.direct-min-bytes", 4 << 20));

  /**
   * Buffered bytes after which a background fdatasync starts writing them back (property {@code
   * granule.restore.writeback-mib}, default 256; 0 turns it off).
   */
  static final long WRITEBACK =
      Math.max(0, Long.getLong("granule.restore.writeback-mib", 256)) << 20;

  private DiskRestorer() {}

  /**
   * Restores {@code disk} to {@code target} with direct writes (see {@link RawTarget}; measured in
   * bench/results-restore.md): every write to a block device, the writes of {@link
   * #MIN_DIRECT_FILE} bytes or more to a file (shorter ones go through the page cache with early
   * write-back). The property {@code granule.restore.direct} ({@code auto}, {@code always}: every
   * write direct, {@code never}: none) overrides that, for measurements or a target that takes
   * direct writes badly.
   */
  public static RestoreResult restore(SnapshotDisk disk, Path target) {
    return restore(disk, target, RestoreListener.NONE);
  }

  /** As {@link #restore(SnapshotDisk, Path)}, reporting progress to {@code listener}. */
  public static RestoreResult restore(SnapshotDisk disk, Path target, RestoreListener listener) {
    String mode = System.getProperty("granule.restore.direct", "auto");
    return restore(
        disk, target, WRITERS, !"never".equals(mode), minDirect(target, mode), WRITEBACK, listener);
  }

  /**
   * The shortest write that goes direct to {@code target} in {@code mode}: 0 (all) in {@code
   * always} mode and on a block device, else {@link #MIN_DIRECT_FILE} (a mode not known counts as
   * {@code auto}, as it always has).
   */
  static int minDirect(Path target, String mode) {
    boolean file = !Files.exists(target) || Files.isRegularFile(target);
    return !"always".equals(mode) && file ? MIN_DIRECT_FILE : 0;
  }

  private static boolean isEmptyFile(Path p) {
    try {
      return Files.isRegularFile(p) && Files.size(p) == 0;
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * Restores {@code disk} to {@code target} with {@code threads} writers, trying {@code O_DIRECT}
   * if {@code tryDirect} for writes of {@code minDirect} bytes or more, buffered writes starting a
   * write-back every {@code writeback} bytes, reporting progress to {@code listener}.
   */
  static RestoreResult restore(
      SnapshotDisk disk,
      Path target,
      int threads,
      boolean tryDirect,
      int minDirect,
      long writeback,
      RestoreListener listener) {
    // an empty file (created for this restore) is as new: it reads zeros once extended, so zero
    // chunks stay holes
    boolean fresh = !Files.exists(target) || isEmptyFile(target);
    boolean regular = fresh || Files.isRegularFile(target);
    FixedIndex fixed = disk.fixedIndex();
    long zeroChunks;
    // not through a link (one planted at a new file's name since it was created): the caller
    // resolves an existing target's links
    try (FileChannel ch =
        io.granule.engine.internal.ops.DirectoryHandle.isHeldFile(target)
            ? FileChannel.open(target, StandardOpenOption.WRITE) // the file held open
            : FileChannel.open( // a new file 0600: a disk holds everything on it
                target,
                java.util.Set.of(
                    StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE,
                    java.nio.file.LinkOption.NOFOLLOW_LINKS),
                java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")))) {
      if (regular && ch.size() > fixed.diskSize()) {
        ch.truncate(fixed.diskSize());
      }
      long deviceSize = regular ? 0 : RawDiskImage.sizeOf(target);
      if (!regular && deviceSize < fixed.diskSize()) {
        // a target problem (exit code 7), wrapped below
        throw new IOException(
            "the device holds "
                + deviceSize
                + " bytes, the disk needs "
                + fixed.diskSize()
                + ": restore to a device at least that large");
      }
      if (regular && ch.size() < fixed.diskSize()) {
        // The size first (a sparse file: one zero byte written at its end, through this
        // descriptor, not the path), so that no write below extends the file.
        ch.write(java.nio.ByteBuffer.allocate(1), fixed.diskSize() - 1);
      }
      try (RawTarget out =
          RawTarget.open(target, ch, tryDirect, fixed.chunkSize(), minDirect, writeback, regular)) {
        zeroChunks = new RunRestore(disk, out, fresh, threads, listener).run();
        out.finish();
      }
      ch.force(true);
    } catch (IOException e) {
      throw new RestoreTargetException(
          "unable to restore to '"
              + target
              + "': "
              + describe(e)
              + " (check the target path and free space)",
          e);
    }
    return new RestoreResult(fixed.diskSize(), disk.chunksFetched(), zeroChunks, fresh);
  }

  /**
   * Restores {@code disk} through {@code writer}, which writes the image file {@code target} (named
   * in messages), and finishes it. The caller closes the writer, and deletes the file on failure.
   */
  public static RestoreResult restore(SnapshotDisk disk, DiskImageWriter writer, Path target) {
    return restore(disk, writer, target, RestoreListener.NONE);
  }

  /** As {@link #restore(SnapshotDisk, DiskImageWriter, Path)}, reporting progress. */
  public static RestoreResult restore(
      SnapshotDisk disk, DiskImageWriter writer, Path target, RestoreListener listener) {
    FixedIndex fixed = disk.fixedIndex();
    long zeroChunks;
    try {
      zeroChunks = new RunRestore(disk, new ImageTarget(writer), true, WRITERS, listener).run();
      writer.finish();
    } catch (IOException e) {
      throw new RestoreTargetException(
          "unable to restore to '"
              + target
              + "': "
              + describe(e)
              + " (check the target path and free space)",
          e);
    }
    listener.progress(fixed.diskSize(), fixed.diskSize());
    return new RestoreResult(fixed.diskSize(), disk.chunksFetched(), zeroChunks, true);
  }

  /** An I/O failure's message: the bare path Java gives some of them says what went wrong. */
  static String describe(IOException e) {
    if (e instanceof java.nio.file.AccessDeniedException) {
      return "permission denied: " + e.getMessage();
    }
    if (e instanceof java.nio.file.NoSuchFileException) {
      return "no such file or directory: " + e.getMessage();
    }
    if (e instanceof java.nio.file.FileAlreadyExistsException) {
      return "it exists already: " + e.getMessage();
    }
    return e.getMessage();
  }
}
