package io.granule.engine.spi;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a {@link Quiesce#release} hands back to be stored with the snapshot.
 *
 * @param metadata small facts a restore needs (backup label, LSNs, binlog coordinates), stored in
 *     the snapshot's manifest; keys and values are plain text
 * @param files larger content (WAL segments, a backup label file) stored as deduplicated streams of
 *     the snapshot
 */
public record Captured(Map<String, String> metadata, List<CapturedFile> files) {

  public Captured {
    metadata = Map.copyOf(metadata);
    files = List.copyOf(files);
    if (files.stream().map(CapturedFile::name).distinct().count() != files.size()) {
      throw new IllegalArgumentException("captured file names must be unique");
    }
  }

  /**
   * One captured file.
   *
   * @param name a relative name with '/' separators, e.g. {@code pg_wal/000000010000000000000003};
   *     the plugin gets the same name back from {@link SnapshotView#openCaptured}
   * @param content opens the content; called once, the stream is read to its end and closed
   */
  public record CapturedFile(String name, Content content) {
    public CapturedFile {
      Objects.requireNonNull(content, "content");
      if (name == null
          || name.isEmpty()
          || name.startsWith("/")
          || name.contains("\\")
          || name.contains(":")
          || List.of(name.split("/", -1)).stream()
              .anyMatch(c -> c.isEmpty() || c.equals(".") || c.equals(".."))) {
        throw new IllegalArgumentException("invalid captured file name '" + name + "'");
      }
    }
  }

  /** Opens a captured file's content. */
  @FunctionalInterface
  public interface Content {
    InputStream open() throws IOException;
  }
}
