package io.granule.engine.internal.app;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.granule.engine.internal.repo.Repository;
import io.granule.engine.internal.repo.RepositoryCache;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.spi.CatalogEntry;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Catalogs of application objects. Each snapshot stores its own (a stream of JSON lines, one {@link
 * CatalogEntry} per line, encrypted and deduplicated like any data), so a repository is
 * self-contained; a local copy per snapshot in the metadata cache makes searching every snapshot
 * fast after the first time. Snapshots never change, so a cached catalog never goes stale; copies
 * of snapshots that no longer exist are removed when found.
 */
public final class Catalogs {
  private static final Logger LOG = LoggerFactory.getLogger(Catalogs.class);
  private static final ObjectMapper JSON =
      new ObjectMapper()
          .disable(SerializationFeature.INDENT_OUTPUT)
          .disable(
              com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  private Catalogs() {}

  /** JSON lines of {@code entries}. */
  public static byte[] encode(List<CatalogEntry> entries) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      for (CatalogEntry e : entries) {
        out.write(JSON.writeValueAsBytes(e));
        out.write('\n');
      }
    } catch (JsonProcessingException e) {
      throw new UncheckedIOException(e);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  /** Parses JSON lines of catalog entries. */
  public static List<CatalogEntry> decode(InputStream in) throws IOException {
    List<CatalogEntry> out = new ArrayList<>();
    BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
    String line;
    while ((line = r.readLine()) != null) {
      if (!line.isBlank()) {
        out.add(JSON.readValue(line, CatalogEntry.class));
      }
    }
    return out;
  }

  /**
   * The catalog {@code app} stored with {@code snapshot}, from the local cache when there, else
   * from the repository (and then cached).
   *
   * @param cacheDir the directory of cached catalogs of this repository, or null for none
   */
  public static List<CatalogEntry> read(
      Repository repository, Manifest snapshot, StoredApplication app, Path cacheDir) {
    if (app.catalog() == null) {
      return List.of();
    }
    Path cached =
        cacheDir == null
            ? null
            : cacheDir.resolve(
                snapshot.id() + "-" + app.record().plugin() + "-" + app.record().instance());
    if (cached != null && Files.isRegularFile(cached)) {
      try (InputStream in = Files.newInputStream(cached)) {
        return decode(in);
      } catch (IOException e) {
        LOG.warn("ignoring unreadable cached catalog {}: {}", cached, e.getMessage());
      }
    }
    byte[] bytes;
    try (InputStream in = repository.openStream(snapshot, app.catalog())) {
      bytes = in.readAllBytes();
    } catch (IOException e) {
      throw new RepositoryCorruptedException(
          "the catalog of "
              + app.key()
              + " in snapshot "
              + snapshot.id().substring(0, 12)
              + " is unreadable: "
              + e.getMessage(),
          e);
    }
    List<CatalogEntry> entries;
    try {
      entries = decode(new java.io.ByteArrayInputStream(bytes));
    } catch (IOException e) {
      throw new RepositoryCorruptedException(
          "the catalog of "
              + app.key()
              + " in snapshot "
              + snapshot.id().substring(0, 12)
              + " is damaged: "
              + e.getMessage(),
          e);
    }
    if (cached != null) {
      try {
        Files.createDirectories(cacheDir);
        Path tmp = Files.createTempFile(cacheDir, ".catalog", ".tmp");
        Files.write(tmp, bytes);
        Files.move(
            tmp, cached, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (IOException e) {
        LOG.warn("unable to cache the catalog in {}: {}", cacheDir, e.getMessage());
      }
    }
    return entries;
  }

  /**
   * One object of one snapshot.
   *
   * @param snapshot the snapshot's id
   * @param time when it was taken
   * @param host its host
   * @param object {@code PLUGIN:ID}
   * @param entry the catalog entry
   */
  public record Hit(String snapshot, String time, String host, String object, CatalogEntry entry) {}

  /** The directory of cached catalogs of {@code repository} under a metadata cache. */
  public static Path cacheDir(Path metadataCache, Repository repository) {
    return RepositoryCache.dir(metadataCache, repository.config().repositoryId())
        .resolve("catalog");
  }

  /**
   * The objects of {@code snapshots} whose id or name contains {@code find} (case-insensitive; all
   * when null) and whose kind is {@code kind} (all when null), in snapshot order.
   */
  public static List<Hit> search(
      Repository repository, List<Manifest> snapshots, String find, String kind, Path cacheDir) {
    String needle = find == null ? null : find.toLowerCase(java.util.Locale.ROOT);
    List<Hit> hits = new ArrayList<>();
    for (Manifest m : snapshots) {
      for (StoredApplication a : StoredApplication.of(m)) {
        for (CatalogEntry e : read(repository, m, a, cacheDir)) {
          if (kind != null && !kind.equalsIgnoreCase(e.kind())) {
            continue;
          }
          if (needle != null
              && !e.id().toLowerCase(java.util.Locale.ROOT).contains(needle)
              && !e.name().toLowerCase(java.util.Locale.ROOT).contains(needle)) {
            continue;
          }
          hits.add(new Hit(m.id(), m.time(), m.host(), a.record().plugin() + ":" + e.id(), e));
        }
      }
    }
    return hits;
  }

  /** Deletes cached catalogs of snapshots not in {@code live}. */
  public static void forgetOthers(Path cacheDir, java.util.Set<String> live) {
    if (cacheDir == null || !Files.isDirectory(cacheDir)) {
      return;
    }
    try (var files = Files.list(cacheDir)) {
      for (Path p : files.toList()) {
        String n = p.getFileName().toString();
        int dash = n.indexOf('-');
        if (dash == 64 && !live.contains(n.substring(0, dash))) {
          Files.deleteIfExists(p);
        }
      }
    } catch (IOException e) {
      LOG.debug("cleaning {}: {}", cacheDir, e.toString());
    }
  }
}
