package io.granule.engine.internal.repo.backup;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Where a {@link RunRestore} writes its runs: a raw file or block device ({@link RawTarget}), which
 * takes them at their offsets in any order from every writer thread at once, or an image file of
 * another format through a plugin's writer ({@link ImageTarget}), which takes them {@link
 * #ordered() in disk order}, one at a time, on the thread that runs the restore.
 */
interface RunTarget {

  /**
   * A direct buffer for {@link #write}, its address aligned, with room for at least {@code length}
   * bytes, its limit at {@code length}.
   */
  ByteBuffer allocate(int length);

  /**
   * Allocates the byte ranges {@code [starts[i], ends[i])} for {@code i < count} before any write,
   * where the target can; does nothing where it cannot.
   */
  void reserve(long[] starts, long[] ends, int count) throws IOException;

  /**
   * Writes the remaining bytes of {@code src}, a buffer from {@link #allocate}, at {@code offset}.
   */
  void write(ByteBuffer src, long offset) throws IOException;

  /**
   * Whether runs must come in increasing offset order, one call at a time, all on the thread that
   * runs the restore: then no chunk is written at a second place from the first place's buffer.
   */
  boolean ordered();
}
