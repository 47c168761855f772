package io.granule.engine.spi;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * Makes what a backup reads consistent for the time it reads it: freezes a filesystem, takes an
 * LVM, ZFS or QEMU external snapshot, makes a reflink copy. {@code fsfreeze} and {@code none} are
 * built in; plugins add others as OSGi services.
 *
 * <p>The engine calls {@link #begin} right before it reads and closes the returned hold right
 * after, on every path. Implementations are thread-safe.
 */
@ConsumerType
public interface SnapshotProvider {

  /** Short lowercase name used on the command line and in snapshots, e.g. {@code fsfreeze}. */
  String name();

  /**
   * Makes {@code targets} (mount points, volumes or images, as the provider defines) consistent.
   *
   * @param maxHold the longest the provider may hold anything (a frozen filesystem blocks every
   *     writer): past it the provider releases on its own and {@link Hold#check} fails
   * @return the hold; closing it releases everything, once, whatever happened
   * @throws IOException if a target cannot be made consistent; nothing is held then
   */
  Hold begin(List<Path> targets, Duration maxHold) throws IOException;

  /** What {@link #begin} holds. */
  @ConsumerType
  interface Hold extends AutoCloseable {

    /**
     * Throws if the hold was released early (its time limit passed), so the data read may not be
     * consistent and the backup must fail.
     */
    void check() throws IOException;

    /** Releases (thaws) everything; idempotent; never throws for an already released hold. */
    @Override
    void close() throws IOException;
  }
}
