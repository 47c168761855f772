package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.crypto.AesGcmCodec;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A frame streamed a step at a time is the same blob as one made whole, plain and encrypted, at
 * lengths around the codec's segments and the stream's steps, and reads back either way.
 */
class StreamedFramesTest {
  @TempDir Path tmp;
  private static final int MAGIC = 0x54455354; // "TEST"

  @BeforeEach
  void temporaries() {
    System.setProperty("granule.tmpdir", tmp.toString());
  }

  @AfterEach
  void clearProperty() {
    System.clearProperty("granule.tmpdir");
  }

  private static StreamedFrames.Source from(byte[] payload) {
    ByteBuffer b = ByteBuffer.wrap(payload);
    return dst -> {
      int n = Math.min(dst.remaining(), b.remaining());
      dst.put(b.duplicate().limit(b.position() + n));
      b.position(b.position() + n);
    };
  }

  private static byte[] loadAll(
      LocalBlobStore store, BlobCodec codec, BlobName name, int small, int[] version)
      throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    version[0] =
        StreamedFrames.load(
            store,
            codec,
            name,
            MAGIC,
            3,
            part -> {
              byte[] b = new byte[part.remaining()];
              part.get(b);
              out.write(b, 0, b.length);
            },
            small);
    return out.toByteArray();
  }

  @Test
  void streamedAndWholeFramesAreTheSameBlob() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    byte[] key = new byte[32];
    new Random(2).nextBytes(key);
    int seg = 64 << 10;
    int step = 1 << 20;
    int[] lengths = {
      1, 100, seg - 12, seg - 11, seg, 3 * seg + 5, step - 12, step - 11, step + 1, 2 * step + 77
    };
    for (BlobCodec codec : new BlobCodec[] {BlobCodec.IDENTITY, new AesGcmCodec(key)}) {
      for (int len : lengths) {
        byte[] payload = new byte[len];
        new Random(len).nextBytes(payload);
        BlobName name = new BlobName(BlobType.FIXED_INDEX, "t" + len);
        StreamedFrames.save(store, codec, name, MAGIC, 2, len, from(payload), 0);
        byte[] whole = BlobFrames.frame(MAGIC, 2, payload);
        assertThat(codec.decode(name, store.load(name))).as("length %d", len).isEqualTo(whole);
        int[] version = new int[1];
        assertThat(loadAll(store, codec, name, 0, version)).isEqualTo(payload);
        assertThat(version[0]).isEqualTo(2);
        assertThat(loadAll(store, codec, name, Integer.MAX_VALUE, version)).isEqualTo(payload);
      }
    }
    try (var left = Files.list(tmp)) {
      assertThat(left.filter(p -> p.getFileName().toString().startsWith(".granule")))
          .as("temporary files gone")
          .isEmpty();
    }
  }

  @Test
  void aStreamedFrameChecksItsMagicVersionAndChecksum() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("repo"));
    byte[] payload = new byte[300_000];
    new Random(9).nextBytes(payload);
    BlobName name = new BlobName(BlobType.FIXED_INDEX, "checked");
    int[] version = new int[1];

    StreamedFrames.save(
        store, BlobCodec.IDENTITY, name, MAGIC + 1, 1, payload.length, from(payload), 0);
    assertThatThrownBy(() -> loadAll(store, BlobCodec.IDENTITY, name, 0, version))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("wrong magic");

    StreamedFrames.save(
        store, BlobCodec.IDENTITY, name, MAGIC, 4, payload.length, from(payload), 0);
    assertThatThrownBy(() -> loadAll(store, BlobCodec.IDENTITY, name, 0, version))
        .isInstanceOf(UnsupportedRepositoryVersionException.class)
        .hasMessageContaining("upgrade granule");

    StreamedFrames.save(
        store, BlobCodec.IDENTITY, name, MAGIC, 1, payload.length, from(payload), 0);
    Path file = store.path(name);
    byte[] v = Files.readAllBytes(file);
    v[5] ^= 0x40; // damage in the version field reads as damage, not as a newer format
    Files.write(file, v);
    assertThatThrownBy(() -> loadAll(store, BlobCodec.IDENTITY, name, 0, version))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("checksum mismatch");
    StreamedFrames.save(
        store, BlobCodec.IDENTITY, name, MAGIC, 1, payload.length, from(payload), 0);
    byte[] b = Files.readAllBytes(file);
    b[200_000] ^= 4;
    Files.write(file, b);
    assertThatThrownBy(() -> loadAll(store, BlobCodec.IDENTITY, name, 0, version))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("checksum mismatch")
        .hasMessageContaining(name.toString());
    Files.write(file, java.util.Arrays.copyOf(b, 5));
    assertThatThrownBy(() -> loadAll(store, BlobCodec.IDENTITY, name, 0, version))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("too short");
  }
}
