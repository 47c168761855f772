package io.granule.engine.internal.repo.lock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Pins the lock blob layout documented in docs/formats.md ("Locks"). */
class LockFormatTest {
  static final BlobName NAME = new BlobName(BlobType.LOCK, "ab".repeat(32));

  @Test
  void lockBlobIsAGlckFrameAroundJson() {
    LockInfo info =
        new LockInfo(
            "shared",
            "backup",
            "db1",
            4242,
            "alice",
            "2026-11-25T16:00:00Z",
            "2026-11-25T16:05:00Z");
    byte[] b = info.toBytes();
    ByteBuffer buf = ByteBuffer.wrap(b);
    assertThat(buf.getInt()).isEqualTo(0x474c434b);
    assertThat(buf.getShort()).isEqualTo((short) 1);
    assertThat(buf.getShort()).isZero();
    String json = new String(b, 8, b.length - 12, StandardCharsets.UTF_8);
    assertThat(json)
        .isEqualTo(
            "{\"kind\":\"shared\",\"operation\":\"backup\",\"host\":\"db1\",\"pid\":4242,"
                + "\"user\":\"alice\",\"created\":\"2026-11-25T16:00:00Z\","
                + "\"refreshed\":\"2026-11-25T16:05:00Z\"}");
    assertThat(LockInfo.parse(NAME, b)).isEqualTo(info);
    assertThat(LockInfo.parse(NAME, b).lockKind()).isEqualTo(LockKind.SHARED);
  }

  @Test
  void damagedLockIsCorrupt() {
    LockInfo info = new LockInfo("exclusive", "prune", "h", 1, "u", "x", "y");
    byte[] b = info.toBytes();
    assertThatThrownBy(() -> LockInfo.parse(NAME, b))
        .as("unparseable times")
        .isInstanceOf(RepositoryCorruptedException.class);
    byte[] ok =
        new LockInfo(
                "exclusive", "prune", "h", 1, "u", "2026-11-25T16:00:00Z", "2026-11-25T16:00:00Z")
            .toBytes();
    byte[] flipped = Arrays.copyOf(ok, ok.length);
    flipped[10] ^= 1;
    assertThatThrownBy(() -> LockInfo.parse(NAME, flipped))
        .isInstanceOf(RepositoryCorruptedException.class)
        .hasMessageContaining("checksum mismatch");
  }

  /**
   * audit14 B L2: what a lock says is printed (unlock, a conflict's message, which keeps its own
   * lines); a host with a line feed faked a line "removed 0 locks; repository OK". Its description
   * is one line, each name at most 256 characters. The lock itself stays valid (audit14 C4: refused
   * for its names, a live backup's lock with a zero-width space in its host name was stale, and a
   * plain unlock removed it).
   */
  @Test
  void aLocksNamesAreShownOnOneLineAndNeverMakeItDamaged() {
    String t = "2026-11-25T16:00:00Z";
    for (String host :
        new String[] {
          "db1\nremoved 0 locks; repository OK",
          "bk\u200bx",
          "db1\u001b]0;PWNED\u0007",
          "h".repeat(300)
        }) {
      byte[] b = new LockInfo("exclusive", "prune", host, 1, "u", t, t).toBytes();
      LockInfo read = LockInfo.parse(NAME, b);
      assertThat(read.host()).isEqualTo(host);
      assertThat(read.describe()).doesNotContain("\n").doesNotContain("\t").hasSizeLessThan(400);
    }
    assertThat(
            LockInfo.parse(NAME, new LockInfo("exclusive", "prune", "a\nb", 1, "u", t, t).toBytes())
                .describe())
        .contains("a\\x0ab");
    assertThat(
            LockInfo.parse(
                    NAME,
                    new LockInfo("exclusive\nremoved 0 locks", "prune", "h", 1, "u", t, t)
                        .toBytes())
                .describe())
        .as("its kind too (audit14 D)")
        .doesNotContain("\n");
  }

  @Test
  void startUpWarmUpsRoundTripThroughTheRealMappers() {
    // the launcher's warm-up thread only logs a failure: a broken round trip must fail here
    LockInfo.warmUp();
    io.granule.engine.internal.repo.RepositoryConfig.warmUp();
  }
}
