package io.granule.engine.spi;

import java.net.URI;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * An application a plugin makes consistent, catalogs and restores single objects of: PostgreSQL,
 * MariaDB/MySQL, SQL Server, a mail store.
 *
 * <p>Plugins register implementations as OSGi services. The engine picks the plugin for a
 * connection URL ({@code --app postgres://user@host:5432/db}) by asking every registered plugin
 * whether it {@link #handles} it, and the plugin for an object id ({@code postgres:shop/public.t})
 * by its {@link #name}. Implementations are stateless and thread-safe.
 *
 * <p>A backup runs, for every application: {@link #connect} → {@link ApplicationSession#quiesce} →
 * {@link ApplicationSession#catalog} → (the engine freezes filesystems, reads the disks, thaws) →
 * {@link Quiesce#release} → (the engine stores what was captured and the catalog with the
 * snapshot). On any failure the engine closes every {@link Quiesce} and {@link ApplicationSession}
 * it opened, which must end backup mode and drop every lock.
 *
 * <p>Credentials never travel in URLs the engine logs: a plugin takes passwords from its product's
 * usual places (for PostgreSQL {@code PGPASSWORD} or {@code ~/.pgpass}, for MariaDB {@code
 * MYSQL_PWD} or an option file). The engine strips any password from a URL before it stores or
 * prints it.
 */
@ConsumerType
public interface ApplicationPlugin {

  /**
   * Short lowercase name, the prefix of this plugin's object ids and the key of its metadata in
   * snapshots, e.g. {@code postgres}. Stable across versions.
   */
  String name();

  /** True if this plugin serves {@code url} (usually by its scheme, e.g. {@code postgres}). */
  boolean handles(URI url);

  /**
   * Connects to the running instance at {@code url}, checks the credentials and the version, and
   * finds where its files live.
   *
   * @throws ApplicationException with {@link ApplicationException.Reason#AUTH} for refused
   *     credentials, {@link ApplicationException.Reason#UNREACHABLE} when nothing answers, {@link
   *     ApplicationException.Reason#UNSUPPORTED} for a version the plugin cannot quiesce
   */
  ApplicationSession connect(URI url) throws ApplicationException;

  /**
   * Restores one object of a snapshot into a live instance: finds the application's files inside
   * the snapshot's disks, extracts what a staging instance needs, brings it to the snapshot's
   * consistency point, copies the object out and loads it into {@code request.target()}.
   *
   * <p>Never touches the live object unless {@link ObjectRestoreRequest#replace()} is set; cleans
   * up every staging file and process on every path.
   *
   * @param record what this plugin stored with the snapshot for the instance, or null when the
   *     snapshot was taken without {@code --app} (crash-consistent: the plugin finds the data on
   *     its own and relies on the application's crash recovery)
   * @throws ApplicationException with the reason that fits: {@link
   *     ApplicationException.Reason#NOT_FOUND} for an unknown object, {@link
   *     ApplicationException.Reason#TARGET_EXISTS} for a name already taken, {@link
   *     ApplicationException.Reason#MISSING_TOOL} for missing staging binaries, {@link
   *     ApplicationException.Reason#NO_DATA} when the snapshot holds no data directory
   */
  ObjectRestoreReport restore(
      ObjectRestoreRequest request,
      SnapshotView snapshot,
      ApplicationRecord record,
      RestoreProgress progress)
      throws ApplicationException;

  /** Told of each phase of a restore as it starts, for progress display. */
  @ConsumerType
  @FunctionalInterface
  interface RestoreProgress {
    /**
     * @param phase a short name, e.g. {@code locate}, {@code extract}, {@code staging start},
     *     {@code dump}, {@code load}
     * @param detail one line for a person, possibly empty
     */
    void phase(String phase, String detail);
  }
}
