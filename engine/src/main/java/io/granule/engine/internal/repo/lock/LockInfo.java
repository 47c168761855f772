package io.granule.engine.internal.repo.lock;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.granule.engine.internal.repo.BlobFrames;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobName;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.time.Instant;

/**
 * The content of a lock blob ({@code locks/<64 hex>}): frame {@code GLCK} v1 around JSON, encoded
 * with the repository's codec like every other metadata blob (so an encrypted repository does not
 * show host or user names).
 *
 * @param kind {@code shared} or {@code exclusive}
 * @param operation what the holder does (backup, prune, …)
 * @param host host name of the holder
 * @param pid process id of the holder on that host
 * @param user user name of the holder
 * @param created when the lock was taken (ISO-8601 UTC)
 * @param refreshed when the holder last rewrote the lock (ISO-8601 UTC)
 * @param machineId the holder's machine id, or null (see {@link LockOwner}; absent in locks of
 *     earlier versions)
 * @param bootId the holder's kernel boot id, or null
 * @param pidNamespace the holder's PID namespace, or null
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public record LockInfo(
    String kind,
    String operation,
    String host,
    long pid,
    String user,
    String created,
    String refreshed,
    String machineId,
    String bootId,
    String pidNamespace) {
  /** Magic of lock blobs: "GLCK". */
  public static final int MAGIC = 0x474c434b;

  public static final int VERSION = 1;

  private static final ObjectMapper JSON =
      new ObjectMapper().disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  /** A lock without the machine, boot and namespace ids (judged by host name, as before them). */
  public LockInfo(
      String kind,
      String operation,
      String host,
      long pid,
      String user,
      String created,
      String refreshed) {
    this(kind, operation, host, pid, user, created, refreshed, null, null, null);
  }

  /** A lock {@code owner} takes at {@code now}. */
  static LockInfo of(LockKind kind, String operation, LockOwner owner, String now) {
    return new LockInfo(
        kind.label(),
        operation,
        owner.host(),
        owner.pid(),
        owner.user(),
        now,
        now,
        owner.machineId(),
        owner.bootId(),
        owner.pidNamespace());
  }

  @JsonIgnore
  public LockKind lockKind() {
    return "exclusive".equals(kind) ? LockKind.EXCLUSIVE : LockKind.SHARED;
  }

  @JsonIgnore
  public Instant createdInstant() {
    return Instant.parse(created);
  }

  @JsonIgnore
  public Instant refreshedInstant() {
    return Instant.parse(refreshed);
  }

  /**
   * Writes and parses a lock through this class's Jackson mapper, so that the first real lock of a
   * command does not pay for it (see {@code StartupWarmup}).
   */
  public static void warmUp() {
    String t = Instant.EPOCH.toString();
    LockInfo l = new LockInfo("shared", "warm-up", "h", 1, "u", t, t);
    parse(
        new BlobName(io.granule.engine.internal.repo.blob.BlobType.LOCK, "0".repeat(64)),
        l.toBytes());
  }

  /** A copy refreshed at {@code now}. */
  public LockInfo refreshedAt(Instant now) {
    return new LockInfo(
        kind, operation, host, pid, user, created, now.toString(), machineId, bootId, pidNamespace);
  }

  /** The framed bytes (before the codec). */
  public byte[] toBytes() {
    try {
      return BlobFrames.frame(MAGIC, VERSION, JSON.writeValueAsBytes(this));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Parses framed bytes read from {@code name}.
   *
   * @throws RepositoryCorruptedException if they are not a lock
   */
  public static LockInfo parse(BlobName name, byte[] bytes) {
    BlobFrames.Framed f = BlobFrames.unframe(name, bytes, MAGIC, VERSION);
    ByteBuffer p = f.payload();
    try {
      LockInfo info =
          JSON.readValue(p.array(), p.arrayOffset() + p.position(), p.remaining(), LockInfo.class);
      if (info.kind == null || info.created == null || info.refreshed == null) {
        throw new RepositoryCorruptedException("lock " + name + ": incomplete");
      }
      info.createdInstant();
      info.refreshedInstant();
      return info;
    } catch (IOException | RuntimeException e) {
      if (e instanceof RepositoryCorruptedException r) {
        throw r;
      }
      throw new RepositoryCorruptedException("lock " + name + ": " + e.getMessage(), e);
    }
  }

  /**
   * {@code s} as a lock's description shows it: on one line (line feeds, carriage returns and tabs
   * escaped: a conflict's message keeps its own lines, and a name with a line feed faked one,
   * audit14 B L2), at most 256 characters. Other control characters are escaped where it is printed
   * ({@code Printable}, the log's {@code %safemsg}). A lock is never judged by its names: one
   * refused for them counted as stale and a plain unlock removed a live backup's (audit14 C4).
   */
  private static String shown(Object o) {
    String s = String.valueOf(o);
    if (s.length() > 256) {
      s = s.substring(0, 256) + "…";
    }
    return s.replace("\n", "\\x0a").replace("\r", "\\x0d").replace("\t", "\\x09");
  }

  /** "exclusive lock of prune by alice@db1 (pid 123) since 2026-…". */
  public String describe() {
    return shown(kind)
        + " lock of "
        + shown(operation)
        + " by "
        + shown(user)
        + "@"
        + shown(host)
        + " (pid "
        + pid
        + ") since "
        + created
        + ", last refreshed "
        + refreshed;
  }
}
