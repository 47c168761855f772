package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.store.ChunkReader;
import java.io.InputStream;

/**
 * Reads a stream of a snapshot back, chunk after chunk, each fetched and checked by the {@link
 * ChunkReader}. A damaged chunk fails the read with a {@link RepositoryCorruptedException} naming
 * the chunk, the snapshot and the stream; the stream never yields wrong bytes. Not thread-safe.
 */
public final class SnapshotStream extends InputStream {
  private final Manifest snapshot;
  private final Manifest.StreamEntry entry;
  private final DynamicIndex index;
  private final ChunkReader chunks;
  private int next;
  private byte[] current = new byte[0];
  private int pos;

  public SnapshotStream(
      Manifest snapshot, Manifest.StreamEntry entry, DynamicIndex index, ChunkReader chunks) {
    this.snapshot = snapshot;
    this.entry = entry;
    this.index = index;
    this.chunks = chunks;
  }

  private boolean fill() {
    while (pos == current.length) {
      if (next == index.count()) {
        return false;
      }
      int p = next++;
      ChunkId id = index.get(p);
      int len = index.length(p);
      if (id.isZero()) {
        current = new byte[len];
      } else {
        try {
          current = chunks.read(id);
        } catch (RepositoryCorruptedException e) {
          throw new RepositoryCorruptedException(
              "snapshot "
                  + snapshot.id()
                  + " stream '"
                  + entry.name()
                  + "' at offset "
                  + index.start(p)
                  + ": "
                  + e.getMessage(),
              e);
        }
        if (current.length != len) {
          throw new RepositoryCorruptedException(
              "snapshot "
                  + snapshot.id()
                  + " stream '"
                  + entry.name()
                  + "': chunk "
                  + id
                  + " has the wrong length: actual="
                  + current.length
                  + " expected="
                  + len);
        }
      }
      pos = 0;
    }
    return true;
  }

  @Override
  public int read() {
    return fill() ? current[pos++] & 0xff : -1;
  }

  @Override
  public int read(byte[] b, int off, int len) {
    if (len == 0) {
      return 0;
    }
    if (!fill()) {
      return -1;
    }
    int n = Math.min(len, current.length - pos);
    System.arraycopy(current, pos, b, off, n);
    pos += n;
    return n;
  }

  /** Frees the index of a long stream (its temporary files). */
  @Override
  public void close() {
    index.close();
    chunks.close(); // an index of this stream's chunks alone, if it has one
  }
}
