package io.granule.engine.internal.repo.snapshot;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.UnsupportedRepositoryVersionException;
import io.granule.engine.internal.repo.blob.BlobName;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Parses snapshot blobs written by {@link ManifestWriter}. Thread-safe.
 *
 * <p>A manifest is bounded before it is bound to objects (audit12 M3: 25 million empty disk entries
 * in a 75 MB manifest ran every listing out of memory): at most {@link #MAX_DISKS} disks, {@link
 * #MAX_STREAMS} streams, {@link #MAX_TAGS} tags, {@link #MAX_APPLICATION_VALUES} JSON values in
 * {@code applications} (the catalogs), strings of at most {@link #MAX_STRING} characters and
 * nesting of at most 1000 levels. Far above any real use; a manifest beyond them is damaged.
 */
public final class ManifestReader {
  private ManifestReader() {}

  /** The most disks one manifest may hold. */
  public static final int MAX_DISKS = 4096;

  /** The most streams one manifest may hold. */
  public static final int MAX_STREAMS = 4096;

  /** The most tags one manifest may hold. */
  public static final int MAX_TAGS = 1024;

  /** The most JSON values (objects, arrays, scalars) {@code applications} may hold in all. */
  public static final int MAX_APPLICATION_VALUES = 1_000_000;

  /** The longest string in a manifest (characters). */
  public static final int MAX_STRING = 1 << 20;

  private static final JsonFactory SCAN =
      JsonFactory.builder()
          .streamReadConstraints(
              StreamReadConstraints.builder()
                  .maxStringLength(MAX_STRING)
                  .maxNestingDepth(1000)
                  .build())
          .build();

  private static final ObjectMapper READ =
      new ObjectMapper(SCAN).disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  /**
   * The manifest in blob {@code name}.
   *
   * @throws RepositoryCorruptedException if the frame or the JSON is damaged, or the id inside
   *     differs from the blob name
   */
  public static Manifest read(BlobName name, byte[] bytes) {
    ByteBuffer p =
        BlobFrames.unframe(name, bytes, ManifestWriter.MAGIC, ManifestWriter.VERSION).payload();
    Manifest m;
    try {
      checkBounds(name, p.array(), p.arrayOffset() + p.position(), p.remaining());
      m = READ.readValue(p.array(), p.arrayOffset() + p.position(), p.remaining(), Manifest.class);
    } catch (IOException e) {
      throw new RepositoryCorruptedException(
          "snapshot " + name + ": unreadable manifest: " + e.getMessage(), e);
    }
    if (m.version() > ManifestWriter.VERSION) {
      throw new UnsupportedRepositoryVersionException(
          "snapshot "
              + name
              + " has manifest version "
              + m.version()
              + " (supported: "
              + ManifestWriter.VERSION
              + "): upgrade granule to read it");
    }
    if (!name.name().equals(m.id())) {
      throw BlobFrames.corrupted("snapshot " + name, "id mismatch", m.id(), name.name());
    }
    return m;
  }

  /**
   * Walks the JSON without building it and refuses it past the bounds above, before anything is
   * bound: what each value would cost in memory is then bounded too.
   */
  private static void checkBounds(BlobName name, byte[] b, int off, int len) throws IOException {
    try (JsonParser j = SCAN.createParser(b, off, len)) {
      if (j.nextToken() != JsonToken.START_OBJECT) {
        return; // the binding names what is wrong
      }
      int depth = 1;
      String field = null; // the top-level field being read
      long count = 0; // its elements (its values in all, for applications)
      JsonToken t;
      while ((t = j.nextToken()) != null) {
        if (depth == 1) {
          if (t == JsonToken.END_OBJECT) {
            return;
          }
          if (t == JsonToken.FIELD_NAME) {
            field = j.currentName();
            count = 0;
            continue;
          }
        }
        if (t == JsonToken.FIELD_NAME) {
          continue;
        }
        if (t.isStructEnd()) {
          depth--;
          continue;
        }
        boolean element = depth == 2;
        if (t.isStructStart()) {
          depth++;
        }
        if (field == null) {
          continue;
        }
        long max;
        switch (field) {
          case "disks" -> max = element ? MAX_DISKS : -1;
          case "streams" -> max = element ? MAX_STREAMS : -1;
          case "tags" -> max = element ? MAX_TAGS : -1;
          case "applications" -> max = MAX_APPLICATION_VALUES;
          default -> max = -1;
        }
        if (max >= 0 && ++count > max) {
          throw new RepositoryCorruptedException(
              "snapshot "
                  + name
                  + ": manifest holds more than "
                  + max
                  + ("applications".equals(field) ? " values in '" : " entries in '")
                  + field
                  + "' (the most a manifest may hold): damaged or not written by granule");
        }
      }
    }
  }
}
