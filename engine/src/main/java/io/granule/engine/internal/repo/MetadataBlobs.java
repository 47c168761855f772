package io.granule.engine.internal.repo;

import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import java.io.IOException;

/**
 * Reads metadata blobs (index, snapshot, fixed and dynamic index blobs) whole: loaded, decoded and
 * parsed, and, if that finds them damaged while the store served a cached copy, read once more from
 * the repository ({@link BlobStore#evictCached}): a copy damaged on this host must not make an
 * intact repository look damaged, nor fail restores. Stateless and thread-safe.
 */
public final class MetadataBlobs {
  private MetadataBlobs() {}

  /** Parses decoded bytes of a blob. */
  @FunctionalInterface
  public interface Parse<T> {
    /**
     * @throws RepositoryCorruptedException (or another runtime exception) if they are damaged
     */
    T parse(BlobName name, byte[] plain) throws IOException;
  }

  /** Something read from a blob, perhaps in pieces. */
  @FunctionalInterface
  public interface Read<T> {
    T read() throws IOException;
  }

  /**
   * Loads {@code name} from {@code store}, decodes it with {@code codec} and parses it.
   *
   * @throws java.nio.file.NoSuchFileException if there is no such blob
   * @throws RuntimeException as {@code codec} and {@code parse} throw for a damaged blob
   */
  public static <T> T read(BlobStore store, BlobCodec codec, BlobName name, Parse<T> parse)
      throws IOException {
    return retryUncached(
        store, name, () -> parse.parse(name, codec.decode(name, store.load(name))));
  }

  /**
   * Runs {@code read}; if it throws a runtime exception (damage) and {@code store} held a cached
   * copy of {@code name}, drops the copy and runs it once more.
   */
  public static <T> T retryUncached(BlobStore store, BlobName name, Read<T> read)
      throws IOException {
    try {
      return read.read();
    } catch (PagedFile.NoRoomException local) {
      throw local; // no room here to hold it: not the copy's fault
    } catch (RuntimeException damaged) {
      boolean evicted;
      try {
        evicted = store.evictCached(name);
      } catch (IOException | RuntimeException e) {
        damaged.addSuppressed(e);
        throw damaged;
      }
      if (!evicted) {
        throw damaged;
      }
      return read.read();
    }
  }
}
