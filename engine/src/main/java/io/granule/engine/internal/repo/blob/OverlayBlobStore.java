package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A store as it would read with some blobs added or replaced, the store itself unchanged: what a
 * dry run checks (repair's, with the metadata it would put back from this host's cache or the index
 * blob it would write). Writes nothing: a save or delete fails.
 */
public final class OverlayBlobStore extends ForwardingBlobStore {
  /** A blob's bytes, read in ranges. */
  public interface Blob {
    long size() throws IOException;

    /** Up to {@code length} bytes from {@code offset} (fewer at the end). */
    byte[] read(long offset, int length) throws IOException;

    /** A blob held in memory. */
    static Blob of(byte[] bytes) {
      return new Blob() {
        @Override
        public long size() {
          return bytes.length;
        }

        @Override
        public byte[] read(long offset, int length) {
          int from = (int) Math.min(offset, bytes.length);
          return Arrays.copyOfRange(
              bytes, from, (int) Math.min(bytes.length, from + (long) length));
        }
      };
    }

    /** A blob in a file, read when asked. */
    static Blob of(Path file) {
      return new Blob() {
        @Override
        public long size() throws IOException {
          return Files.size(file);
        }

        @Override
        public byte[] read(long offset, int length) throws IOException {
          try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            int n = (int) Math.max(0, Math.min(length, ch.size() - offset));
            ByteBuffer b = ByteBuffer.allocate(n);
            while (b.hasRemaining() && ch.read(b, offset + b.position()) >= 0) {
              // until full or at the end
            }
            return b.position() == n ? b.array() : Arrays.copyOf(b.array(), b.position());
          }
        }
      };
    }
  }

  private final Map<BlobName, Blob> added;
  private final Instant now = Instant.now();

  /** {@code base} with {@code added} (by name) read in place of what it holds, and listed. */
  public OverlayBlobStore(BlobStore base, Map<BlobName, Blob> added) {
    super(base);
    this.added = Map.copyOf(added);
  }

  @Override
  public byte[] load(BlobName name) throws IOException {
    Blob b = added.get(name);
    if (b == null) {
      return delegate.load(name);
    }
    long size = b.size();
    BlobStore.requireLoadable(name, size, delegate.location());
    return b.read(0, (int) size);
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    Blob b = added.get(name);
    return b == null ? delegate.load(name, offset, length) : b.read(offset, length);
  }

  @Override
  public void load(BlobName name, long offset, ByteBuffer dst) throws IOException {
    Blob b = added.get(name);
    if (b == null) {
      delegate.load(name, offset, dst);
    } else {
      dst.put(b.read(offset, dst.remaining()));
    }
  }

  @Override
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    Blob b = added.get(name);
    return b == null ? delegate.stat(name) : Optional.of(new BlobInfo(name, b.size(), now));
  }

  @Override
  public void prefetch(BlobName name, long offset, long length, long useful) {
    if (!added.containsKey(name)) {
      delegate.prefetch(name, offset, length, useful);
    }
  }

  @Override
  public List<BlobName> list(BlobType type) throws IOException {
    List<BlobName> l = new ArrayList<>(delegate.list(type));
    for (BlobName n : added.keySet()) {
      if (n.type() == type && !l.contains(n)) {
        l.add(n);
      }
    }
    return l;
  }

  @Override
  public List<BlobInfo> listInfo(BlobType type) throws IOException {
    List<BlobInfo> l = new ArrayList<>(delegate.listInfo(type));
    l.removeIf(i -> added.containsKey(i.name()));
    for (BlobName n : added.keySet()) {
      if (n.type() == type) {
        l.add(new BlobInfo(n, added.get(n).size(), now));
      }
    }
    return l;
  }

  private static IOException readOnly() {
    return new IOException("a dry run writes nothing");
  }

  @Override
  public void save(BlobName name, FileChannel file, long length) throws IOException {
    throw readOnly();
  }

  @Override
  public void save(BlobName name, byte[] data) throws IOException {
    throw readOnly();
  }

  @Override
  public void save(BlobName name, ByteBuffer data) throws IOException {
    throw readOnly();
  }

  @Override
  public void save(BlobName name, ByteBuffer data, Runnable released) throws IOException {
    throw readOnly();
  }

  @Override
  public void saveNew(BlobName name, byte[] data) throws IOException {
    throw readOnly();
  }

  @Override
  public void delete(BlobName name) throws IOException {
    throw readOnly();
  }
}
