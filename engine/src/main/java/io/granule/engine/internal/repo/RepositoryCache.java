package io.granule.engine.internal.repo;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A repository's directory in the user's cache: {@code <metadata cache>/<repository id>/}, holding
 * copies of a remote repository's metadata blobs, cached catalogs and the kept chunk index ({@link
 * io.granule.engine.internal.repo.index.IndexCache}). Everything in it can be made again. The
 * runtime deletes such directories when their {@link #USED} file is older than 30 days (see
 * docs/design.md, "Caches"); resolving the directory here marks it used, at most once a day so that
 * a command pays one {@code stat} for it.
 */
public final class RepositoryCache {
  /** The file whose modification time is the directory's last use (the runtime reads it). */
  public static final String USED = ".used";

  static final Duration RESOLUTION = Duration.ofDays(1);

  private static final Logger LOG = LoggerFactory.getLogger(RepositoryCache.class);

  private RepositoryCache() {}

  /** {@code metadataCache/repositoryId}, marked used now. */
  public static Path dir(Path metadataCache, String repositoryId) {
    Path dir = metadataCache.resolve(repositoryId);
    markUsed(dir, Instant.now());
    return dir;
  }

  /**
   * Creates {@code dir}'s {@link #USED} file, or sets its modification time to {@code now} if it is
   * older than a day. Best effort: a cache that cannot be written only costs downloads.
   */
  static void markUsed(Path dir, Instant now) {
    Path used = dir.resolve(USED);
    try {
      if (Files.getLastModifiedTime(used).toInstant().isBefore(now.minus(RESOLUTION))) {
        Files.setLastModifiedTime(used, FileTime.from(now));
      }
    } catch (NoSuchFileException e) {
      try {
        Files.createDirectories(dir);
        Files.newOutputStream(used).close();
      } catch (IOException | UnsupportedOperationException cannot) {
        LOG.debug("unable to mark {} used: {}", dir, cannot.toString());
      }
    } catch (IOException e) {
      LOG.debug("unable to mark {} used: {}", dir, e.toString());
    }
  }
}
