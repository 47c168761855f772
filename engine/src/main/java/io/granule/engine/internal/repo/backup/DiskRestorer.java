package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryException;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.SnapshotDisk;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes a disk of a snapshot to a file or block device, chunk by chunk in order. On a target that
 * does not exist yet, zero chunks are skipped and the file is sparse; on an existing file or device
 * they are written as zeros, so no old byte survives. A regular file is cut to the disk size; a
 * device must be at least as large. Data is fsynced before returning.
 *
 * <p>A damaged chunk stops the restore with a {@code RepositoryCorruptedException} naming the chunk
 * and the snapshot; what was written so far stays in the target, which must then not be trusted.
 */
public final class DiskRestorer {
  private DiskRestorer() {}

  /** Restores {@code disk} to {@code target}. */
  public static RestoreResult restore(SnapshotDisk disk, Path target) {
    boolean fresh = !Files.exists(target);
    boolean regular = fresh || Files.isRegularFile(target);
    FixedIndex fixed = disk.fixedIndex();
    long zeroChunks = 0;
    try (FileChannel ch =
        FileChannel.open(target, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      if (regular && ch.size() > fixed.diskSize()) {
        ch.truncate(fixed.diskSize());
      }
      if (!regular && ch.size() > 0 && ch.size() < fixed.diskSize()) {
        throw new RepositoryException(
            "unable to restore to '"
                + target
                + "': device holds "
                + ch.size()
                + " bytes, the disk needs "
                + fixed.diskSize());
      }
      ByteBuffer zeros = ByteBuffer.allocate(fixed.chunkSize());
      for (int p = 0; p < fixed.count(); p++) {
        long offset = (long) p * fixed.chunkSize();
        int len = fixed.length(p);
        ChunkId id = fixed.get(p);
        if (id.isZero()) {
          zeroChunks++;
          if (!fresh) {
            writeFully(ch, zeros.clear().limit(len), offset);
          }
        } else {
          writeFully(ch, ByteBuffer.wrap(disk.readChunk(p)), offset);
        }
      }
      if (regular && ch.size() < fixed.diskSize()) {
        writeFully(ch, ByteBuffer.allocate(1), fixed.diskSize() - 1);
      }
      ch.force(true);
    } catch (IOException e) {
      throw new RepositoryException(
          "unable to restore to '"
              + target
              + "': "
              + e.getMessage()
              + " (check the target path and free space)",
          e);
    }
    return new RestoreResult(fixed.diskSize(), disk.chunksFetched(), zeroChunks, fresh);
  }

  private static void writeFully(FileChannel ch, ByteBuffer b, long offset) throws IOException {
    long pos = offset;
    while (b.hasRemaining()) {
      pos += ch.write(b, pos);
    }
  }
}
