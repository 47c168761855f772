package io.granule.engine.internal.repo.index;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.RepositoryException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;

/**
 * Index entries (id, location) kept in the order they were added, in a nameless temporary file, to
 * be replayed in that order: what lets a verify decide about entries out of order (their trailer
 * checks are answered in the order of a sort) and still hand them to its index in the order the
 * index blobs list them, as a repository loading its index does. Records are those of {@link
 * ChunkIndex}'s sorts (64 bytes). Not thread-safe.
 */
public final class EntrySpill implements Closeable {
  private final Path dir;
  private RandomAccessFile file;
  private DataOutputStream out;
  private int count;

  /** Replays entries. */
  public interface Entry {
    void accept(int number, ChunkId id, ChunkLocation location);
  }

  /** An empty spill whose file, once an entry comes, goes in {@code dir}. */
  public EntrySpill(Path dir) {
    this.dir = dir;
  }

  /**
   * Adds an entry (its offset under 2^32, its raw length under 2^24) and returns its number: 0, 1,
   * 2 and so on.
   */
  public int add(ChunkId id, ChunkLocation location) {
    ChunkIndex.checkRange(location);
    if (count == Integer.MAX_VALUE) {
      throw new RepositoryException("more than 2^31 index entries to check at once");
    }
    try {
      if (out == null) {
        file = SlotPages.nameless(dir, ".chunk-index-spill-");
        out = new DataOutputStream(new BufferedOutputStream(new FileOutputStream(file.getFD())));
      }
      write(out, id, location, 0);
    } catch (IOException e) {
      throw failure(dir, e);
    }
    return count++;
  }

  /** Number of entries added. */
  public int size() {
    return count;
  }

  /** Hands every entry back in the order added. */
  public void replay(Entry each) {
    if (out == null) {
      return;
    }
    try {
      out.flush();
      file.seek(0);
      DataInputStream in =
          new DataInputStream(new BufferedInputStream(new FileInputStream(file.getFD()), 64 << 10));
      for (int i = 0; i < count; i++) {
        int n = i;
        read(in, (id, l, tag) -> each.accept(n, id, l));
      }
    } catch (IOException e) {
      throw failure(dir, e);
    }
  }

  @Override
  public void close() {
    if (file != null) {
      try {
        file.close(); // nameless: its space is freed now
      } catch (IOException e) {
        // freed when the process exits
      }
      file = null;
      out = null;
    }
  }

  /** What {@link #read} hands back. */
  interface Record {
    void accept(ChunkId id, ChunkLocation location, int tag);
  }

  /** Bytes of a record. */
  static final int RECORD = 64;

  /**
   * Writes a record: the id's four words, the pack id's two, the offset, the stored length, raw
   * length << 8 | flags, and {@code tag} (big-endian).
   */
  static void write(DataOutputStream out, ChunkId id, ChunkLocation location, int tag)
      throws IOException {
    out.writeLong(id.w0());
    out.writeLong(id.w1());
    out.writeLong(id.w2());
    out.writeLong(id.w3());
    out.writeLong(location.pack().hi());
    out.writeLong(location.pack().lo());
    out.writeInt((int) location.offset());
    out.writeInt(location.storedLength());
    out.writeInt((location.rawLength() << 8) | (location.flags() & 0xff));
    out.writeInt(tag);
  }

  /** Reads a record written by {@link #write}. */
  static void read(DataInputStream in, Record record) throws IOException {
    ChunkId id = new ChunkId(in.readLong(), in.readLong(), in.readLong(), in.readLong());
    PackId pack = new PackId(in.readLong(), in.readLong());
    long offset = Integer.toUnsignedLong(in.readInt());
    int stored = in.readInt();
    int rawAndFlags = in.readInt();
    int tag = in.readInt();
    record.accept(
        id, new ChunkLocation(pack, offset, stored, rawAndFlags >>> 8, rawAndFlags & 0xff), tag);
  }

  static RepositoryException failure(Path dir, IOException e) {
    return new RepositoryException(
        "unable to sort the chunk index's entries in "
            + dir
            + ": "
            + e.getMessage()
            + " (free space there or point the cache directory elsewhere)",
        e);
  }
}
