package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A small least-recently-used cache of metadata tables or decoded blocks, bounded by the total
 * weight (bytes) of its values.
 *
 * <p>Thread-safe. A value is loaded outside the lock, so two threads missing the same key may both
 * load it; the loads are idempotent reads of an immutable file, and the second simply replaces the
 * first.
 */
final class BoundedCache<K, V> {
  /** Loads a value on a miss. */
  interface Loader<K, V> {
    V load(K key) throws IOException;
  }

  /** Measures a value's weight in bytes. */
  interface Weigher<V> {
    long weigh(V value);
  }

  private final LinkedHashMap<K, V> map = new LinkedHashMap<>(16, 0.75f, true);
  private final long maxWeight;
  private final Weigher<V> weigher;
  private long weight;

  BoundedCache(long maxWeight, Weigher<V> weigher) {
    this.maxWeight = maxWeight;
    this.weigher = weigher;
  }

  V get(K key, Loader<K, V> loader) throws IOException {
    synchronized (this) {
      V v = map.get(key);
      if (v != null) {
        return v;
      }
    }
    V loaded = loader.load(key);
    long w = weigher.weigh(loaded);
    synchronized (this) {
      V old = map.put(key, loaded);
      if (old != null) {
        weight -= weigher.weigh(old);
      }
      weight += w;
      // Evict the oldest entries but always keep the one just loaded.
      Iterator<Map.Entry<K, V>> it = map.entrySet().iterator();
      while (weight > maxWeight && map.size() > 1 && it.hasNext()) {
        Map.Entry<K, V> e = it.next();
        if (e.getKey().equals(key)) {
          continue;
        }
        weight -= weigher.weigh(e.getValue());
        it.remove();
      }
    }
    return loaded;
  }
}
