package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.ChunkId;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * Decoded chunks kept for their next place on the disk, for restores that write in disk order (an
 * image file of another format): there a chunk at several places cannot be written at its later
 * places when it is first decoded, as a raw restore does, so without this it is fetched, decrypted,
 * decompressed and checked again at each place. Holds up to a fixed number of chunks in direct
 * buffers; when it is full, a chunk whose next place has been reached already goes first, then the
 * one needed last (farthest next place), and a new chunk needed later than every held one is not
 * kept. The bytes come from a checked decode, so a copy is as verified as the chunk. Thread-safe.
 */
final class DuplicateCache {
  private static final class Entry {
    final ByteBuffer data;
    final int length;
    int next;

    Entry(ByteBuffer data, int length, int next) {
      this.data = data;
      this.length = length;
      this.next = next;
    }
  }

  private final io.granule.engine.internal.repo.snapshot.FixedIndex.NextSame nextSame;
  private final int capacity;
  private final int chunkSize;
  private final Map<ChunkId, Entry> entries = new HashMap<>();
  private final ArrayDeque<ByteBuffer> free = new ArrayDeque<>();
  private int allocated;
  private long hits;

  /**
   * A cache of up to {@code capacity} chunks of at most {@code chunkSize} bytes; {@code nextSame}
   * gives, per position, the next position of the same chunk or -1 ({@code FixedIndex.nextSame()}).
   */
  DuplicateCache(
      io.granule.engine.internal.repo.snapshot.FixedIndex.NextSame nextSame,
      int capacity,
      int chunkSize) {
    this.nextSame = nextSame;
    this.capacity = capacity;
    this.chunkSize = chunkSize;
  }

  /**
   * Puts the bytes of chunk {@code id}, needed at position {@code p}, into {@code dst} at its
   * position if they are held (advancing it); false if not.
   */
  synchronized boolean take(ChunkId id, int p, ByteBuffer dst) {
    Entry e = entries.get(id);
    if (e == null) {
      return false;
    }
    dst.put(e.data.duplicate().limit(e.length).position(0));
    hits++;
    int n = nextSame.get(p);
    if (n < 0 && e.next <= p) {
      entries.remove(id);
      free.push(e.data);
    } else {
      e.next = Math.max(e.next, n);
    }
    return true;
  }

  /**
   * Offers chunk {@code id}, just decoded for position {@code p} into {@code length} bytes of
   * {@code src} from {@code from}, for its next place: kept if it has one and there is room (see
   * the class).
   */
  synchronized void offer(ChunkId id, int p, ByteBuffer src, int from, int length) {
    int n = nextSame.get(p);
    if (n < 0) {
      return;
    }
    Entry held = entries.get(id);
    if (held != null) {
      held.next = Math.max(held.next, n);
      return;
    }
    ByteBuffer b = free.poll();
    if (b == null && allocated < capacity) {
      b = ByteBuffer.allocateDirect(chunkSize);
      allocated++;
    }
    if (b == null) {
      ChunkId victim = null;
      int latest = n;
      for (Map.Entry<ChunkId, Entry> c : entries.entrySet()) {
        int next = c.getValue().next;
        if (next <= p) {
          victim = c.getKey(); // its next place has been reached: taken, or decoded there
          break;
        }
        if (next > latest) {
          latest = next;
          victim = c.getKey();
        }
      }
      if (victim == null) {
        return; // every held chunk is needed sooner than this one
      }
      b = entries.remove(victim).data;
    }
    b.clear();
    b.put(src.duplicate().limit(from + length).position(from));
    entries.put(id, new Entry(b, length, n));
  }

  /** Chunks served from the cache so far. */
  synchronized long hits() {
    return hits;
  }
}
