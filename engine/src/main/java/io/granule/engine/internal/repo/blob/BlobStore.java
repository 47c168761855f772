package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.util.List;
import java.util.Optional;

/**
 * A flat store of named, immutable blobs: the substrate of a repository (a local directory, later
 * an S3 bucket).
 *
 * <p>Contract every implementation guarantees:
 *
 * <ul>
 *   <li>{@link #save} is atomic and durable: when it returns, the blob is complete and survives a
 *       crash; a crash during it leaves either no blob of that name or the complete blob, never a
 *       partial one. Saving a name that exists replaces it atomically; callers only do so with
 *       identical content (names are random or content-derived), so save is idempotent.
 *   <li>{@link #load} returns exactly the bytes saved. A missing blob is {@link
 *       java.nio.file.NoSuchFileException}; a range past the end is {@link java.io.EOFException}.
 *   <li>{@link #list} returns every complete blob of a type, never a temporary or partial one, in
 *       no particular order.
 *   <li>{@link #delete} of a missing blob is not an error.
 *   <li>All methods are safe to call from several threads at once.
 * </ul>
 *
 * <p>The store sees opaque bytes: compression and encryption happen above it (see {@link
 * BlobCodec}).
 */
public interface BlobStore {

  /** Stores {@code data} under {@code name}, atomically and durably. */
  void save(BlobName name, byte[] data) throws IOException;

  /**
   * Stores the bytes remaining in {@code data} (heap or direct; its position is left alone) under
   * {@code name}, as {@link #save(BlobName, byte[])} does. Stores that can write a buffer as it is
   * override it to save a copy (a pack is assembled in a larger, reused direct buffer).
   */
  default void save(BlobName name, java.nio.ByteBuffer data) throws IOException {
    byte[] b = new byte[data.remaining()];
    data.duplicate().get(b);
    save(name, b);
  }

  /**
   * As {@link #save(BlobName, java.nio.ByteBuffer)}, running {@code released} once the store reads
   * {@code data} no more, which may be before the save is durable (a local file: after its writes,
   * before its fsync), so that the caller can reuse the buffer while the save waits for the disk.
   * {@code released} runs at most once; after a failure it may not run at all.
   */
  default void save(BlobName name, java.nio.ByteBuffer data, Runnable released) throws IOException {
    save(name, data);
    released.run();
  }

  /**
   * Stores the first {@code length} bytes of {@code file} under {@code name}, as {@link
   * #save(BlobName, byte[])} does, read with positional reads (the channel's position untouched; a
   * retry reads them again): a blob too large for memory (a large disk's fixed index), written
   * without holding it. The stores of the product copy it through the kernel or in parts; the
   * default maps it.
   */
  default void save(BlobName name, java.nio.channels.FileChannel file, long length)
      throws IOException {
    save(name, file.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, length));
  }

  /**
   * A hint that bytes {@code [offset, offset + length)} of blob {@code name} will be loaded soon,
   * {@code useful} bytes of them in all (the rest lies between the records to be loaded and is read
   * through rather than skipped): the store may fetch them now (a local directory reads them into
   * the page cache on the calling thread; {@link PrefetchingBlobStore}, over a remote store or a
   * local one with direct reads, into memory of its own in the background, so that the loads that
   * follow need no request of their own). Never fails: a hint the store cannot act on (a missing
   * blob, an I/O error) is dropped, and the load reports it. Default: nothing.
   */
  default void prefetch(BlobName name, long offset, long length, long useful) {}

  /**
   * Drops a local copy of blob {@code name} if this store keeps one (a cache of a remote store), so
   * the next load reads the original; whether there was one. A reader that finds a blob damaged
   * calls it and reads once more: a copy damaged on this host is not damage of the repository.
   */
  default boolean evictCached(BlobName name) throws IOException {
    return false;
  }

  /**
   * Deletes what writers killed mid-save left behind (a local directory's {@code .tmp-*} files)
   * unchanged for longer than {@code olderThan}, and returns the bytes freed. Only under the
   * repository's exclusive lock (prune), when no other writer can be mid-save. Stores that leave
   * nothing (S3: an upload is atomic) free nothing.
   */
  default long deleteLeftovers(java.time.Duration olderThan) throws IOException {
    return 0;
  }

  /** The whole content of a blob. */
  byte[] load(BlobName name) throws IOException;

  /** {@code length} bytes of a blob starting at {@code offset}. */
  byte[] load(BlobName name, long offset, int length) throws IOException;

  /**
   * As {@link #load(BlobName, long, int)}, of {@code dst.remaining()} bytes, put into {@code dst}
   * (heap or direct), whose position advances to its limit: a local directory reads them straight
   * into a direct buffer, without the array and the copies of a {@code byte[]} load. On an
   * exception the bytes put into {@code dst} must not be used. Default: through {@link
   * #load(BlobName, long, int)}.
   */
  default void load(BlobName name, long offset, java.nio.ByteBuffer dst) throws IOException {
    dst.put(load(name, offset, dst.remaining()));
  }

  /** The size of a blob, or empty if it does not exist. */
  Optional<BlobInfo> stat(BlobName name) throws IOException;

  /** The names of all blobs of {@code type}. */
  List<BlobName> list(BlobType type) throws IOException;

  /**
   * The names and sizes of all blobs of {@code type} (a blob deleted meanwhile may be missing).
   * Stores that learn sizes from their listing (S3) override this to avoid one request per blob.
   */
  default List<BlobInfo> listInfo(BlobType type) throws IOException {
    List<BlobInfo> out = new java.util.ArrayList<>();
    for (BlobName n : list(type)) {
      stat(n).ifPresent(out::add);
    }
    return out;
  }

  /** Removes a blob; does nothing if it does not exist. */
  void delete(BlobName name) throws IOException;

  /** A human-readable location of the store, e.g. its directory, for messages. */
  String location();

  /**
   * Saves blob {@code name} only if none of that name exists. By default the store is asked first
   * (not atomic: two saves at once can both succeed); a store that can do it atomically does.
   *
   * @throws java.nio.file.FileAlreadyExistsException if there is one
   */
  default void saveNew(BlobName name, byte[] data) throws IOException {
    if (stat(name).isPresent()) {
      throw new java.nio.file.FileAlreadyExistsException(location() + "/" + name);
    }
    save(name, data);
  }

  /**
   * Where the store is, spelled one way whatever way it was named (to remember a repository by its
   * place: {@code ConfigPin}); by default its {@link #location}.
   */
  default String place() {
    return location();
  }

  /**
   * What the store's place is rather than how it is reached, if it has such a name: a local
   * directory's device and inode numbers, the same through a bind mount or another spelling of a
   * path that {@link #place} cannot resolve ({@code ConfigPin}); empty by default.
   */
  default Optional<String> placeIdentity() {
    return Optional.empty();
  }

  /**
   * Where the store is inside its file system, whatever that is mounted at (a local directory's
   * file system id and path from the file system's root: {@code ConfigPin}), if it can be told;
   * empty by default.
   */
  default Optional<String> placeInFileSystem() {
    return Optional.empty();
  }

  /**
   * The store's place as it was named, links not resolved (a local directory's absolute path):
   * where {@link #place} resolves a link put in place of the directory to its target, this is still
   * the name the user gave ({@code ConfigPin}); empty by default.
   */
  default Optional<String> placeAsNamed() {
    return Optional.empty();
  }

  /**
   * Why the repository's directory or config may be another user's (he owns it, can write it, or
   * the config has another name), or null (none, or no owners here: an object store).
   */
  default Foreign foreign() {
    return null;
  }

  /**
   * Another user's hold on a local repository: {@code uid} is his (the owner's, -1 when he is not
   * one user: a group that can write it, a second name of the config), {@code why} says what it is
   * ("it belongs to uid 1001, another user"), {@code secondName} whether the config has another
   * name.
   */
  record Foreign(int uid, String why, boolean secondName) {}

  /**
   * Refuses to read blob {@code name} of {@code size} bytes whole if this process could not hold it
   * (more than a quarter of its heap): one large stray file (sparse: it costs nothing on disk)
   * killed every command with OutOfMemoryError and a stack trace that named nothing.
   *
   * @throws BlobTooLargeException naming the blob, its size and what to do
   */
  static void requireLoadable(BlobName name, long size, String where) throws BlobTooLargeException {
    long limit = Math.min(Integer.MAX_VALUE - 16, Runtime.getRuntime().maxMemory() / 4);
    if (size > limit) {
      throw new BlobTooLargeException(
          "blob "
              + name
              + " in "
              + where
              + " is "
              + size
              + " bytes, more than this process reads whole (at most "
              + limit
              + " with this heap): damaged or not written by granule (run granule verify, which"
              + " names it), or give the JVM more heap (GRANULE_JAVA_OPTS=-Xmx…)");
    }
  }
}
