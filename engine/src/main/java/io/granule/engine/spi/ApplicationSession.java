package io.granule.engine.spi;

import java.time.Duration;
import java.util.List;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A connection to one running application instance, held for the whole backup. Closing it ends any
 * {@link Quiesce} it started (for PostgreSQL, closing the backup connection aborts backup mode) and
 * never throws.
 */
@ConsumerType
public interface ApplicationSession extends AutoCloseable {

  /** What the plugin found: product, version, where its files live. */
  ApplicationInfo info();

  /**
   * Makes the instance's files on disk consistent (or recoverable to a consistent point) until
   * {@link Quiesce#release} or {@link Quiesce#close}: PostgreSQL backup mode, MariaDB backup
   * stages, SQL Server suspend for snapshot.
   *
   * @param maxHold the longest the instance may stay quiesced: past it the plugin releases on its
   *     own (the backup then fails, since its copy may be inconsistent)
   * @throws ApplicationException if the instance cannot be quiesced; nothing is held then
   */
  Quiesce quiesce(Duration maxHold) throws ApplicationException;

  /**
   * The instance's logical objects as they are now: databases, schemas, tables, indexes, sequences,
   * mailboxes, folders. Called while quiesced, so it describes the snapshot.
   */
  List<CatalogEntry> catalog() throws ApplicationException;

  /** Ends everything this session holds and disconnects; idempotent; never throws. */
  @Override
  void close();
}
