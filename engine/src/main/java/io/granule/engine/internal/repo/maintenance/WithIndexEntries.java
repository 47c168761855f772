package io.granule.engine.internal.repo.maintenance;

import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.ForwardingBlobStore;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A store as it reads once index blobs listing some entries are added, the store itself unchanged:
 * the blobs are held in memory. A dry run of repair checks with it what the entries it would write
 * heal (audit Z-L1: the damage the real run healed was reported, exit 5). Writes nothing: a save or
 * delete fails.
 */
public final class WithIndexEntries extends ForwardingBlobStore {
  private final Map<BlobName, byte[]> added = new LinkedHashMap<>();

  /** {@code store} with index blobs listing {@code entries}, encoded by {@code codec}. */
  public WithIndexEntries(BlobStore store, BlobCodec codec, Map<ChunkId, ChunkLocation> entries)
      throws IOException {
    super(store);
    List<IndexEntry> list = new ArrayList<>(entries.size());
    entries.forEach((id, l) -> list.add(new IndexEntry(id, l)));
    IndexWriter.save(
        new ForwardingBlobStore(store) {
          @Override
          public void save(BlobName name, byte[] data) {
            added.put(name, data);
          }
        },
        codec,
        list);
  }

  private byte[] bytes(BlobName name) throws NoSuchFileException {
    byte[] b = added.get(name);
    if (b == null) {
      throw new NoSuchFileException(name.toString());
    }
    return b;
  }

  @Override
  public byte[] load(BlobName name) throws IOException {
    return added.containsKey(name) ? bytes(name).clone() : delegate.load(name);
  }

  @Override
  public byte[] load(BlobName name, long offset, int length) throws IOException {
    if (!added.containsKey(name)) {
      return delegate.load(name, offset, length);
    }
    byte[] b = bytes(name);
    int from = (int) Math.min(offset, b.length);
    return java.util.Arrays.copyOfRange(b, from, (int) Math.min(b.length, from + (long) length));
  }

  @Override
  public void load(BlobName name, long offset, ByteBuffer dst) throws IOException {
    if (!added.containsKey(name)) {
      delegate.load(name, offset, dst);
      return;
    }
    dst.put(load(name, offset, dst.remaining()));
  }

  @Override
  public Optional<BlobInfo> stat(BlobName name) throws IOException {
    return added.containsKey(name)
        ? Optional.of(new BlobInfo(name, added.get(name).length, Instant.now()))
        : delegate.stat(name);
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
    added.keySet().stream().filter(n -> n.type() == type).forEach(l::add);
    return l;
  }

  @Override
  public List<BlobInfo> listInfo(BlobType type) throws IOException {
    List<BlobInfo> l = new ArrayList<>(delegate.listInfo(type));
    for (BlobName n : added.keySet()) {
      if (n.type() == type) {
        l.add(new BlobInfo(n, added.get(n).length, Instant.now()));
      }
    }
    return l;
  }

  private static IOException readOnly() {
    return new IOException("a dry run writes nothing");
  }

  @Override
  public void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
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
