package io.granule.engine.internal.repo;

import static io.granule.engine.internal.repo.TestImages.sha256;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.image.RawDiskImage;
import io.granule.engine.internal.repo.backup.BackupListener;
import io.granule.engine.internal.repo.backup.BackupRequest;
import io.granule.engine.internal.repo.backup.BackupRequest.NamedDisk;
import io.granule.engine.internal.repo.backup.VerifyListener;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackReader;
import io.granule.engine.internal.repo.snapshot.Manifest;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Proves the encryption seam: a codec that changes lengths, binds each record to its blob name and
 * authenticates it works with the unchanged pack, index and snapshot formats, hides the plaintext,
 * and turns tampering into corruption errors.
 */
class SealedCodecTest {
  @TempDir Path tmp;

  /** A stand-in for authenticated encryption: random 8-byte nonce, XOR keystream, 4-byte tag. */
  static final class SealingCodec implements BlobCodec {
    private final Random nonces = new Random(99);

    private static byte[] keystream(BlobName name, long nonce, int n) {
      Random r = new Random(name.name().hashCode() * 31L + nonce);
      byte[] k = new byte[n];
      r.nextBytes(k);
      return k;
    }

    private static int tag(BlobName name, byte[] plain) {
      byte[] n = name.toString().getBytes(StandardCharsets.UTF_8);
      return BlobFrames.crc32c(n, 0, n.length) * 31 + BlobFrames.crc32c(plain, 0, plain.length);
    }

    @Override
    public synchronized byte[] encode(BlobName name, byte[] plain) {
      long nonce = nonces.nextLong();
      byte[] k = keystream(name, nonce, plain.length);
      ByteBuffer out = ByteBuffer.allocate(plain.length + 12);
      out.putLong(nonce);
      for (int i = 0; i < plain.length; i++) {
        out.put((byte) (plain[i] ^ k[i]));
      }
      out.putInt(tag(name, plain));
      return out.array();
    }

    @Override
    public byte[] decode(BlobName name, byte[] stored) {
      if (stored.length < 12) {
        throw new IllegalArgumentException("sealed record too short");
      }
      ByteBuffer in = ByteBuffer.wrap(stored);
      long nonce = in.getLong();
      byte[] plain = new byte[stored.length - 12];
      byte[] k = keystream(name, nonce, plain.length);
      for (int i = 0; i < plain.length; i++) {
        plain[i] = (byte) (in.get() ^ k[i]);
      }
      if (in.getInt() != tag(name, plain)) {
        throw new IllegalArgumentException("authentication failed");
      }
      return plain;
    }
  }

  @Test
  void sealedRepositoryRoundTripsHidesPlaintextAndDetectsTampering() throws Exception {
    byte[] data = TestImages.mixed(6 << 20, 61);
    Path image = TestImages.write(tmp.resolve("vm.raw"), data);
    Path dir = tmp.resolve("repo");
    LocalBlobStore store = new LocalBlobStore(dir);
    SealingCodec codec = new SealingCodec();
    Manifest m;
    try (Repository repo =
            Repository.init(
                store,
                RepositoryConfig.defaults().withChunkSize(64 << 10).withPackSize(512 << 10),
                Clock.systemUTC(),
                tmp.resolve("cache"),
                codec);
        RawDiskImage img = RawDiskImage.open(image)) {
      m =
          repo.backup(
                  new BackupRequest(List.of(new NamedDisk("vda", img)), "secret-host", null, null),
                  BackupListener.NONE)
              .manifest();
    }
    byte[] needle = "quick brown fox".getBytes(StandardCharsets.US_ASCII);
    byte[] host = "secret-host".getBytes(StandardCharsets.US_ASCII);
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        byte[] content = Files.readAllBytes(f);
        assertThat(indexOf(content, needle)).as("plaintext in %s", f).isNegative();
        assertThat(indexOf(content, host)).as("host name in %s", f).isNegative();
      }
    }
    try (Repository repo = Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"), codec)) {
      assertThat(repo.resolve("latest")).isEqualTo(m);
      repo.restoreDisk(m, "vda", tmp.resolve("out"));
      assertThat(sha256(tmp.resolve("out"))).isEqualTo(sha256(data));
      assertThat(repo.verify(true, VerifyListener.NONE).ok()).isTrue();
    }
    try (Repository plain = Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"))) {
      assertThatThrownBy(() -> plain.resolve(m.id()))
          .isInstanceOf(RepositoryCorruptedException.class);
    }

    BlobName pack = store.list(BlobType.PACK).get(0);
    PackEntry e = PackReader.loadTrailer(store, pack).get(0);
    try (RandomAccessFile f = new RandomAccessFile(store.path(pack).toFile(), "rw")) {
      f.seek(e.offset() + 9);
      int v = f.read();
      f.seek(e.offset() + 9);
      f.write(v ^ 1);
    }
    try (Repository repo = Repository.open(store, Clock.systemUTC(), tmp.resolve("cache"), codec)) {
      assertThat(repo.verify(true, VerifyListener.NONE).affectedSnapshots())
          .containsExactly(m.id());
      assertThatThrownBy(() -> repo.restoreDisk(m, "vda", tmp.resolve("out2")))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageContaining("snapshot " + m.id())
          .hasMessageContaining("chunk " + e.id() + " in pack " + pack)
          .hasMessageContaining("authentication failed");
    }
  }

  private static int indexOf(byte[] hay, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= hay.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (hay[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
