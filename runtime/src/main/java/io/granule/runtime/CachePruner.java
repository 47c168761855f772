package io.granule.runtime;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps the user's cache directory ({@code ~/.cache/granule}, or {@code $XDG_CACHE_HOME/granule})
 * from growing without bound. Everything in it can be made again, at a cost: the class-data-sharing
 * archives of {@code bin/granule} (~14 MB per command and jar: a slower start-up once) and the
 * per-repository directories named after a repository id (copies of a remote repository's metadata
 * and cached catalogs: downloads and reads once). What nothing used for {@link
 * #DEFAULT_UNUSED_DAYS} days is deleted, at most once a day, on a command's exit (on start-up for
 * the server, in the background): archives of jars that moved or were deleted (clones, old
 * installs), and caches of repositories that are gone.
 *
 * <p>"Used" is a modification time, refreshed at most once a day so that reading stays cheap: the
 * archive this JVM maps (named by {@code bin/granule} in {@link #ARCHIVE_PROPERTY}) here, and a
 * repository's directory by the engine, which touches its {@link #USED} file when it opens the
 * cache. A repository directory is renamed to {@code removing-…} before it is deleted, so a process
 * that opens it later starts an empty one; {@link BundleCache} deletes what an interrupted deletion
 * left. {@code -Dgranule.cache.unused-days=0} turns pruning off.
 */
final class CachePruner {
  /** System property naming the class-data-sharing archive this JVM maps (set by bin/granule). */
  static final String ARCHIVE_PROPERTY = "granule.cds.archive";

  /** Days unused after which a cache entry is deleted. */
  static final String UNUSED_DAYS_PROPERTY = "granule.cache.unused-days";

  static final int DEFAULT_UNUSED_DAYS = 30;

  /** File in the cache root whose modification time is the last pruning. */
  static final String PRUNED = ".pruned";

  /** File in a repository's cache directory whose modification time is its last use. */
  static final String USED = ".used";

  /** How often the cache is pruned, and how stale a "used" time may get before it is refreshed. */
  static final Duration RESOLUTION = Duration.ofDays(1);

  /** A leftover of an archive dump that was killed: {@code NAME.jsa.tmp.PID}. */
  private static final Duration TEMPORARY = Duration.ofDays(1);

  private static final Pattern REPOSITORY_ID = Pattern.compile("[0-9a-f]{64}");
  private static final Logger LOG = LoggerFactory.getLogger(CachePruner.class);

  private CachePruner() {}

  /**
   * Marks the archive named in {@link #ARCHIVE_PROPERTY} used, then prunes {@code root} unless it
   * was pruned in the last day or pruning is off. Never throws: a cache that cannot be cleaned only
   * costs space.
   */
  static void run(Path root) {
    try {
      String archive = System.getProperty(ARCHIVE_PROPERTY);
      Instant now = Instant.now();
      if (archive != null && !archive.isEmpty()) {
        markUsed(Path.of(archive), now);
      }
      int days = Integer.getInteger(UNUSED_DAYS_PROPERTY, DEFAULT_UNUSED_DAYS);
      if (days > 0) {
        prune(root, now, Duration.ofDays(days));
      }
    } catch (RuntimeException e) {
      LOG.debug("cache clean-up of {} failed: {}", root, e.toString());
    }
  }

  /** Sets {@code file}'s modification time to {@code now} if it is older than a day. */
  static void markUsed(Path file, Instant now) {
    try {
      if (Files.getLastModifiedTime(file).toInstant().isBefore(now.minus(RESOLUTION))) {
        Files.setLastModifiedTime(file, FileTime.from(now));
      }
    } catch (IOException e) {
      LOG.debug("unable to mark {} used: {}", file, e.toString());
    }
  }

  /**
   * Deletes what was not used for {@code unused} under {@code root}, unless {@code root} was pruned
   * less than a day before {@code now}. Returns the number of entries deleted, or -1 when it was
   * not time yet.
   */
  static int prune(Path root, Instant now, Duration unused) {
    if (!Files.isDirectory(root)) {
      return 0;
    }
    Path marker = root.resolve(PRUNED);
    try {
      if (Files.getLastModifiedTime(marker).toInstant().isAfter(now.minus(RESOLUTION))) {
        return -1;
      }
      Files.setLastModifiedTime(marker, FileTime.from(now));
    } catch (NoSuchFileException e) {
      try {
        Files.createFile(marker);
        Files.setLastModifiedTime(marker, FileTime.from(now));
      } catch (IOException racedOrReadOnly) {
        return -1; // another process prunes now, or the cache is read-only
      }
    } catch (IOException e) {
      return -1;
    }
    Instant cutoff = now.minus(unused);
    int deleted = pruneArchives(root.resolve("cds"), cutoff, now.minus(TEMPORARY));
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(root)) {
      for (Path dir : ds) {
        String name = dir.getFileName().toString();
        if (REPOSITORY_ID.matcher(name).matches()
            && Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)
            && lastUse(dir).isBefore(cutoff)) {
          Path doomed = root.resolve(BundleCache.REMOVING_PREFIX + name);
          try {
            Files.move(dir, doomed, StandardCopyOption.ATOMIC_MOVE);
          } catch (IOException e) {
            continue;
          }
          BundleCache.deleteTree(doomed);
          LOG.debug("deleted the cache of repository {}, unused since {}", name, cutoff);
          deleted++;
        }
      }
    } catch (IOException e) {
      LOG.debug("unable to list {}: {}", root, e.toString());
    }
    return deleted;
  }

  private static int pruneArchives(Path cds, Instant cutoff, Instant temporaryCutoff) {
    int deleted = 0;
    if (!Files.isDirectory(cds)) {
      return 0;
    }
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(cds, "granule-*")) {
      for (Path f : ds) {
        String name = f.getFileName().toString();
        Instant before;
        if (name.endsWith(".jsa") || name.endsWith(".nocds")) {
          before = cutoff;
        } else if (name.contains(".jsa.tmp.")) {
          before = temporaryCutoff;
        } else {
          continue;
        }
        try {
          // A JVM that maps the archive keeps its mapping: unlinking it harms no running command.
          if (Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)
              && Files.getLastModifiedTime(f, LinkOption.NOFOLLOW_LINKS)
                  .toInstant()
                  .isBefore(before)
              && Files.deleteIfExists(f)) {
            deleted++;
          }
        } catch (IOException e) {
          LOG.debug("unable to delete {}: {}", f, e.toString());
        }
      }
    } catch (IOException e) {
      LOG.debug("unable to list {}: {}", cds, e.toString());
    }
    return deleted;
  }

  /** When a repository's cache directory was last used: its {@link #USED} file, else itself. */
  private static Instant lastUse(Path dir) {
    try {
      return Files.getLastModifiedTime(dir.resolve(USED)).toInstant();
    } catch (IOException noMarker) {
      try {
        return Files.getLastModifiedTime(dir).toInstant();
      } catch (IOException e) {
        return Instant.MAX; // cannot tell: keep it
      }
    }
  }
}
