package io.granule.engine.internal.ops;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A file's POSIX access ACL ({@code system.posix_acl_access}), for {@link SourceAccess}: who it
 * lets write the file beyond its mode bits. Read with {@code lgetxattr} through {@code
 * libgranule-native}; without the library, with {@code getfacl}.
 */
public final class PosixAcl {
  /** An entry's tag, as the kernel stores it. */
  static final int USER_OBJ = 0x01;

  static final int USER = 0x02;
  static final int GROUP_OBJ = 0x04;
  static final int GROUP = 0x08;
  static final int MASK = 0x10;
  static final int OTHER = 0x20;

  /** One entry: a tag, its user or group id (named entries only, else -1), its rwx bits. */
  record Entry(int tag, int id, int perm) {}

  private static final int VERSION = 2;
  private static final int ENODATA = 61;
  private static final int EOPNOTSUPP = 95;

  private final List<Entry> entries;

  private PosixAcl(List<Entry> entries) {
    this.entries = entries;
  }

  /**
   * Whether {@code p} (not through a link at its last component) has an access ACL beyond its mode
   * bits; true if that cannot be told.
   */
  public static boolean present(Path p) {
    try {
      return of(p) != null;
    } catch (IOException e) {
      return true;
    }
  }

  /**
   * {@code p}'s access ACL (not through a link at its last component), or null if it has none (only
   * its mode bits, or a file system without ACLs).
   *
   * @throws IOException if it cannot be read or makes no sense: the caller counts everyone
   */
  static PosixAcl of(Path p) throws IOException {
    if (NativeLibrary.unavailableReason() != null) {
      return ofGetfacl(p);
    }
    byte[] buf = new byte[65536]; // the largest value an extended attribute may have
    int n = access0((p + "\0").getBytes(StandardCharsets.UTF_8), buf);
    if (n == -ENODATA || n == -EOPNOTSUPP) {
      return null;
    }
    if (n < 0) {
      throw new IOException("lgetxattr(system.posix_acl_access) failed: errno " + -n);
    }
    return parse(ByteBuffer.wrap(buf, 0, n).order(ByteOrder.LITTLE_ENDIAN));
  }

  /** The kernel's form: a version, then (tag, perm, id) entries of 8 bytes, little-endian. */
  static PosixAcl parse(ByteBuffer b) throws IOException {
    if (b.remaining() < 4 || b.getInt() != VERSION || b.remaining() % 8 != 0) {
      throw new IOException("an ACL of an unknown form");
    }
    List<Entry> entries = new ArrayList<>();
    while (b.hasRemaining()) {
      int tag = Short.toUnsignedInt(b.getShort());
      int perm = Short.toUnsignedInt(b.getShort());
      int id = b.getInt();
      entries.add(new Entry(tag, tag == USER || tag == GROUP ? id : -1, perm));
    }
    return checked(entries);
  }

  /**
   * Without the native library: {@code getfacl}'s entries ({@code user:1001:rw-}); nothing printed
   * (--skip-base) is no ACL.
   */
  private static PosixAcl ofGetfacl(Path p) throws IOException {
    Process proc;
    try {
      proc =
          new ProcessBuilder(
                  "getfacl",
                  "--absolute-names",
                  "--numeric",
                  "--no-effective",
                  "--skip-base",
                  "--omit-header",
                  "--",
                  p.toString())
              .redirectErrorStream(true)
              .start();
    } catch (IOException e) {
      throw new IOException("no native library and no getfacl (" + e.getMessage() + ")", e);
    }
    String out = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    try {
      if (proc.waitFor() != 0) {
        throw new IOException("getfacl failed: " + out.trim());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("interrupted reading an ACL", e);
    }
    return out.isBlank() ? null : parse(out);
  }

  /** getfacl's text form: {@code TAG:[ID]:PERM} lines, {@code #} comments. */
  static PosixAcl parse(String text) throws IOException {
    List<Entry> entries = new ArrayList<>();
    for (String line : text.split("\n")) {
      line = line.strip();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      String[] f = line.split(":", -1);
      if (f.length != 3 || f[2].length() != 3) {
        throw new IOException("an ACL line of an unknown form: '" + line + "'");
      }
      boolean named = !f[1].isEmpty();
      int tag =
          switch (f[0]) {
            case "user" -> named ? USER : USER_OBJ;
            case "group" -> named ? GROUP : GROUP_OBJ;
            case "mask" -> MASK;
            case "other" -> OTHER;
            default -> throw new IOException("an ACL entry of an unknown kind: '" + line + "'");
          };
      int perm =
          (f[2].charAt(0) == 'r' ? 4 : 0)
              | (f[2].charAt(1) == 'w' ? 2 : 0)
              | (f[2].charAt(2) == 'x' ? 1 : 0);
      int id;
      try {
        id = named ? Integer.parseInt(f[1]) : -1;
      } catch (NumberFormatException e) {
        throw new IOException("an ACL entry without a numeric id: '" + line + "'", e);
      }
      entries.add(new Entry(tag, id, perm));
    }
    return checked(entries);
  }

  /** Refuses tags the kernel does not have, and named entries without a mask. */
  private static PosixAcl checked(List<Entry> entries) throws IOException {
    boolean named = false;
    boolean mask = false;
    for (Entry e : entries) {
      switch (e.tag()) {
        case USER, GROUP -> named = true;
        case MASK -> mask = true;
        case USER_OBJ, GROUP_OBJ, OTHER -> {
          // base entries: the mode bits
        }
        default -> throw new IOException("an ACL entry of an unknown kind (tag " + e.tag() + ")");
      }
    }
    if (named && !mask) {
      throw new IOException("an ACL with named entries but no mask");
    }
    return new PosixAcl(List.copyOf(entries));
  }

  /** The mask's bits, or all (0x7) if there is none (then only base entries exist). */
  private int mask() {
    for (Entry e : entries) {
      if (e.tag() == MASK) {
        return e.perm();
      }
    }
    return 7;
  }

  /** Whether the entry, masked as the kernel masks named entries and the owning group, writes. */
  private boolean writes(Entry e) {
    return (e.perm() & mask() & 2) != 0;
  }

  /** The named users (USER entries) whose entry lets them write. */
  List<Integer> writingUsers() {
    return entries.stream().filter(e -> e.tag() == USER && writes(e)).map(Entry::id).toList();
  }

  /** The named groups (GROUP entries) whose entry lets them write. */
  List<Integer> writingGroups() {
    return entries.stream().filter(e -> e.tag() == GROUP && writes(e)).map(Entry::id).toList();
  }

  /**
   * Whether the owning group may write: its own entry masked (the mode's group bits show the mask
   * where there is one, not the group's entry).
   */
  boolean owningGroupWrites() {
    return entries.stream().anyMatch(e -> e.tag() == GROUP_OBJ && writes(e));
  }

  /** Reads {@code system.posix_acl_access} of the NUL-terminated path: its length, or -errno. */
  private static native int access0(byte[] path, byte[] buf);
}
