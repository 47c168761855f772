package io.granule.engine.internal.plugin;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * The plugin services of one SPI type that operations may use, and the operations using them.
 *
 * <p>The rule for an operation in progress when its plugin is updated or removed: the runtime
 * waits, up to the drain timeout, for the operation to finish on the version it started with; only
 * then does the old version go away and the new one take its place. If the operation is still
 * running at the timeout, its lease is revoked: its next use of the plugin throws {@link
 * PluginUnavailableException} naming the update, and the operation fails cleanly (nothing it wrote
 * is referenced: a backup writes its snapshot manifest last).
 *
 * <p>Plain Java so that it can be tested without a framework; the OSGi glue calls {@link #added}
 * and {@link #removed} from service tracker callbacks. Thread-safe.
 *
 * @param <S> the SPI type
 */
public final class PluginLeases<S> {

  /** Where a service comes from, for messages: {@code io.example.plugin 1.2.0}. */
  public record Origin(String symbolicName, String version) {
    @Override
    public String toString() {
      return symbolicName + " " + version;
    }
  }

  private final String typeName;
  private final Function<S, String> nameOf;
  private final Duration drainTimeout;
  private final Map<Object, Entry<S>> entries = new LinkedHashMap<>();

  /**
   * @param typeName the SPI's simple name, for messages
   * @param nameOf the name of a service within the type, e.g. a format's name
   * @param drainTimeout how long a departing plugin waits for operations using it
   */
  public PluginLeases(String typeName, Function<S, String> nameOf, Duration drainTimeout) {
    this.typeName = typeName;
    this.nameOf = nameOf;
    this.drainTimeout = drainTimeout;
  }

  /** A service arrived; {@code key} identifies it until {@link #removed}. */
  public synchronized void added(Object key, S service, Origin origin, int ranking) {
    entries.put(key, new Entry<>(service, nameOf.apply(service), origin, ranking));
    notifyAll();
  }

  /**
   * A service is going away (its bundle stops, updates or uninstalls). Blocks until every lease on
   * it is closed or the drain timeout passes; leases still open then are revoked.
   *
   * @return the number of leases revoked
   */
  public int removed(Object key) throws InterruptedException {
    Entry<S> e;
    synchronized (this) {
      e = entries.remove(key);
      if (e == null) {
        return 0;
      }
      e.departing = true;
      long deadline = System.nanoTime() + drainTimeout.toNanos();
      while (e.active > 0) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          break;
        }
        long ms = Math.max(1, left / 1_000_000);
        wait(ms);
      }
      int revoked = e.active;
      e.revoked = revoked > 0;
      return revoked;
    }
  }

  /**
   * Leases the service named {@code name}; the highest-ranked one if several share the name.
   *
   * @throws PluginUnavailableException if no plugin provides it
   */
  public synchronized Lease<S> acquire(String name) {
    return find(name)
        .map(this::lease)
        .orElseThrow(
            () ->
                new PluginUnavailableException(
                    "no plugin provides "
                        + typeName
                        + " '"
                        + name
                        + "' (available: "
                        + String.join(", ", names())
                        + "); deploy the plugin that provides it into the plugins folder"));
  }

  /** Leases every service available now, highest ranking first; the caller closes them all. */
  public synchronized List<Lease<S>> acquireAll() {
    List<Entry<S>> sorted = new ArrayList<>(entries.values());
    sorted.sort(Comparator.comparingInt((Entry<S> en) -> -en.ranking));
    List<Lease<S>> out = new ArrayList<>();
    for (Entry<S> en : sorted) {
      out.add(lease(en));
    }
    return out;
  }

  /** The names of the services available now, sorted. */
  public synchronized List<String> names() {
    return entries.values().stream().map(en -> en.name).distinct().sorted().toList();
  }

  private Optional<Entry<S>> find(String name) {
    return entries.values().stream()
        .filter(en -> en.name.equals(name))
        .max(Comparator.comparingInt(en -> en.ranking));
  }

  private Lease<S> lease(Entry<S> e) {
    e.active++;
    return new Lease<>(this, e);
  }

  private synchronized void release(Entry<S> e) {
    e.active--;
    notifyAll();
  }

  private String revokedMessage(Entry<S> e) {
    return "plugin "
        + e.origin
        + " ("
        + typeName
        + " '"
        + e.name
        + "') was updated or removed while this operation used it and did not finish within "
        + drainTimeout.toSeconds()
        + " s; the operation stopped and nothing it wrote is used; run it again";
  }

  private static final class Entry<S> {
    final S service;
    final String name;
    final Origin origin;
    final int ranking;
    int active;
    boolean departing;
    volatile boolean revoked;

    Entry(S service, String name, Origin origin, int ranking) {
      this.service = service;
      this.name = name;
      this.origin = origin;
      this.ranking = ranking;
    }
  }

  /**
   * One operation's use of one plugin service. Not thread-safe to close twice concurrently; close
   * it in a {@code finally} or try-with-resources.
   */
  public static final class Lease<S> implements AutoCloseable {
    private final PluginLeases<S> owner;
    private final Entry<S> entry;
    private boolean closed;

    private Lease(PluginLeases<S> owner, Entry<S> entry) {
      this.owner = owner;
      this.entry = entry;
    }

    /**
     * The service, for one call or a short sequence of calls.
     *
     * @throws PluginUnavailableException if the plugin was updated or removed and this operation
     *     outlived the drain timeout
     */
    public S get() {
      check();
      return entry.service;
    }

    /** Throws {@link PluginUnavailableException} if the lease was revoked. */
    public void check() {
      if (closed) {
        throw new IllegalStateException("lease already closed");
      }
      if (entry.revoked) {
        throw new PluginUnavailableException(owner.revokedMessage(entry));
      }
    }

    public String name() {
      return entry.name;
    }

    public Origin origin() {
      return entry.origin;
    }

    @Override
    public void close() {
      if (!closed) {
        closed = true;
        owner.release(entry);
      }
    }
  }
}
