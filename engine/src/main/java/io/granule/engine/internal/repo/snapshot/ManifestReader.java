package io.granule.engine.internal.repo.snapshot;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.UnsupportedRepositoryVersionException;
import io.granule.engine.internal.repo.blob.BlobName;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Parses snapshot blobs written by {@link ManifestWriter}. Thread-safe. */
public final class ManifestReader {
  private ManifestReader() {}

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
      m =
          ManifestWriter.JSON.readValue(
              p.array(), p.arrayOffset() + p.position(), p.remaining(), Manifest.class);
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
}
