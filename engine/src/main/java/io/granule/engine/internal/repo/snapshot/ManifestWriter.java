package io.granule.engine.internal.repo.snapshot;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.granule.engine.internal.repo.BlobFrames;
import java.io.UncheckedIOException;

/**
 * Serializes a {@link Manifest}: pretty-printed UTF-8 JSON in a {@link BlobFrames} frame (magic
 * "GSNP", version 1). Thread-safe.
 */
public final class ManifestWriter {
  /** Magic of snapshot blobs: "GSNP". */
  public static final int MAGIC = 0x47534e50;

  public static final int VERSION = 1;

  static final ObjectMapper JSON =
      new ObjectMapper()
          .enable(SerializationFeature.INDENT_OUTPUT)
          .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  private ManifestWriter() {}

  /** The framed bytes of {@code manifest} (before any {@code BlobCodec}). */
  public static byte[] write(Manifest manifest) {
    try {
      return BlobFrames.frame(MAGIC, VERSION, JSON.writeValueAsBytes(manifest));
    } catch (JsonProcessingException e) {
      throw new UncheckedIOException(e);
    }
  }
}
