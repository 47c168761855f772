package io.granule.engine.internal.repo.snapshot;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/**
 * A manifest is bounded before it is bound to objects (audit12 M3: a 75 MB manifest of 25 million
 * empty disk entries ran every listing out of memory): past the bounds it is damaged, whatever the
 * heap.
 */
class ManifestBoundsTest {
  private static final String ID = "ab".repeat(32);
  private static final BlobName NAME = new BlobName(BlobType.SNAPSHOT, ID);

  private static byte[] manifest(String fields) {
    String json =
        "{\"version\":1,\"id\":\""
            + ID
            + "\",\"time\":\"2026-11-25T16:00:00Z\",\"host\":\"h\""
            + fields
            + "}";
    return BlobFrames.frame(
        ManifestWriter.MAGIC, ManifestWriter.VERSION, json.getBytes(StandardCharsets.UTF_8));
  }

  private static String many(String each, int n) {
    StringBuilder s = new StringBuilder(each.length() * n + 8);
    for (int i = 0; i < n; i++) {
      s.append(i == 0 ? "" : ",").append(each);
    }
    return s.toString();
  }

  private static final String DISK =
      "{\"name\":\"vda\",\"size\":1,\"chunkSize\":1,\"fixedIndex\":\"" + "cd".repeat(32) + "\"}";

  @Test
  void aManifestWithinTheBoundsIsRead() {
    Manifest m =
        ManifestReader.read(
            NAME,
            manifest(
                ",\"tags\":["
                    + many("\"t\"", ManifestReader.MAX_TAGS)
                    + "],\"disks\":["
                    + many(DISK, ManifestReader.MAX_DISKS)
                    + "],\"streams\":[],\"applications\":{\"p\":{\"catalog\":["
                    + many("{\"a\":[1,2]}", 1000)
                    + "]}},\"unknown\":["
                    + many("{}", 100_000)
                    + "]"));
    assertThat(m.disks()).hasSize(ManifestReader.MAX_DISKS);
    assertThat(m.tags()).hasSize(ManifestReader.MAX_TAGS);
    assertThat(m.applications()).containsKey("p");
  }

  @Test
  void tooManyDisksStreamsOrTagsAreDamageNotAnOutOfMemoryError() {
    assertThatThrownBy(
            () -> ManifestReader.read(NAME, manifest(",\"disks\":[" + many("{}", 5_000_000) + "]")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("snapshot snapshots/" + ID)
        .hasMessageContaining("more than 4096 entries in 'disks'");
    assertThatThrownBy(
            () -> ManifestReader.read(NAME, manifest(",\"streams\":[" + many("{}", 4097) + "]")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("more than 4096 entries in 'streams'");
    assertThatThrownBy(
            () -> ManifestReader.read(NAME, manifest(",\"tags\":[" + many("\"x\"", 1025) + "]")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("more than 1024 entries in 'tags'");
  }

  @Test
  void tooManyValuesInTheApplicationsAreDamage() {
    assertThatThrownBy(
            () ->
                ManifestReader.read(
                    NAME, manifest(",\"applications\":{\"p\":[" + many("[]", 1_000_000) + "]}")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("more than 1000000 values in 'applications'");
  }

  @Test
  void aStringLongerThanAMebibyteIsDamage() {
    assertThatThrownBy(
            () ->
                ManifestReader.read(
                    NAME, manifest(",\"tags\":[\"" + "x".repeat((1 << 20) + 1) + "\"]")))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("snapshot snapshots/" + ID);
  }
}
