package io.granule.engine.spi;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * An application held consistent by {@link ApplicationSession#quiesce}. Bounded by the maximum hold
 * time given there: when it passes, the plugin releases on its own and {@link #check} and {@link
 * #release} fail.
 */
@ConsumerType
public interface Quiesce extends AutoCloseable {

  /**
   * Throws if the hold ended early (time limit passed, connection lost), so a snapshot taken now
   * would not be application-consistent.
   */
  void check() throws ApplicationException;

  /**
   * Ends the hold normally, right after the snapshot was taken, and returns what must be stored
   * with it for the copy to be restorable (for PostgreSQL the backup label, the tablespace map and
   * the WAL written between start and stop). May be called once.
   *
   * @throws ApplicationException if the hold had already ended early or ending it failed: the
   *     snapshot is then not application-consistent and the backup must fail
   */
  Captured release() throws ApplicationException;

  /**
   * Ends the hold without capturing anything (the abort path), and frees whatever {@link #release}
   * handed out (temporary copies of captured files). Idempotent; never throws.
   */
  @Override
  void close();
}
