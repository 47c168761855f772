package io.granule.plugin.vmdisk.internal;

import static io.granule.plugin.vmdisk.internal.ImageFile.hex;

import io.granule.engine.spi.ChangeTracking;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * qcow2 persistent dirty bitmaps (the bitmaps header extension, qcow2 version 3), read straight
 * from the file; created and removed with {@code qemu-img bitmap}, the reference tool, which also
 * refuses an image a running QEMU holds.
 *
 * <p>A bitmap is trusted only if the image's autoclear bit 0 says the bitmap metadata is
 * consistent, the bitmap is a dirty-tracking bitmap (type 1), enabled ({@code auto}), and not
 * {@code in_use} (set while a program has it loaded; left set if it crashed). Every structure is
 * bounds-checked against the file and the virtual size; a damaged one is an error naming it and its
 * offset.
 *
 * <p>Everything is done on the file the image was opened as, never on whatever its name leads to
 * later (a root backup opens a user's image as the users who can change it, see the engine's {@code
 * SourceAccess}; the name is theirs to swap for a link to root's files afterwards):
 *
 * <ul>
 *   <li>Bitmaps are read through the image's own open file ({@link ImageFile#current}), never
 *       reopened by name.
 *   <li>{@code qemu-img} runs as the identity the image was opened with ({@link Opener}), through
 *       {@code setpriv}: every file it opens (the image, and whatever a header it reads names) is
 *       then the kernel's decision for those users, whatever they write into the header or swap
 *       meanwhile. An image opened with this process's own identity (root's image in root's
 *       directories) is handed to qemu-img as before.
 *   <li>Before and after each {@code qemu-img} run, the image's name must still lead to the opened
 *       file (device and inode); otherwise nothing is run, and the error names the file.
 * </ul>
 */
final class Qcow2Bitmaps implements ChangeTracking {
  private static final int EXT_BITMAPS = 0x23852875;
  private static final int EXT_END = 0;
  private static final long AUTOCLEAR_BITMAPS = 1;
  private static final int FLAG_IN_USE = 1;
  private static final int FLAG_AUTO = 2;
  private static final int TYPE_DIRTY_TRACKING = 1;
  private static final long MAX_DIRECTORY = 64L << 20;
  private static final long TABLE_OFFSET_MASK = 0x00fffffffffffe00L;
  private static final int MAX_BITMAPS = 65535;

  private final ImageFile file;
  private final Path path;
  private final Opener opener;

  /**
   * The bitmaps of {@code file}, an image's own open file, which {@code opener} opened.
   *
   * @param opener who opened it, {@link Opener#ofThisThread} on the thread that did
   */
  Qcow2Bitmaps(ImageFile file, Opener opener) {
    this.file = file;
    this.path = file.path();
    this.opener = opener;
  }

  /**
   * The file-system identity a file was opened with: this process's own ({@code switched} false),
   * or the fsuid, fsgid and supplementary groups of a thread that opened it as other users; {@code
   * known} false if it could not be told.
   */
  record Opener(boolean known, boolean switched, int uid, int gid, int[] groups) {
    /** This process's own identity. */
    static final Opener PROCESS = new Opener(true, false, -1, -1, new int[0]);

    Opener {
      groups = groups.clone();
    }

    @Override
    public int[] groups() {
      return groups.clone();
    }

    /**
     * The calling thread's file-system identity, from {@code /proc/thread-self/status}: switched if
     * its fsuid or fsgid differs from its effective ones (the engine opens a user's image on a
     * thread of its own that switched only those and the groups).
     */
    static Opener ofThisThread() {
      return parse(readStatus());
    }

    private static String readStatus() {
      try {
        return java.nio.file.Files.readString(
            Path.of("/proc/thread-self/status"), StandardCharsets.UTF_8);
      } catch (IOException | RuntimeException e) {
        return null;
      }
    }

    static Opener parse(String status) {
      if (status == null) {
        return new Opener(false, false, -1, -1, new int[0]);
      }
      long[] uid = null;
      long[] gid = null;
      int[] groups = null;
      for (String line : status.split("\n")) {
        String[] kv = line.split(":", 2);
        if (kv.length != 2) {
          continue;
        }
        String v = kv[1].trim();
        switch (kv[0]) {
          case "Uid" -> uid = numbers(v);
          case "Gid" -> gid = numbers(v);
          case "Groups" ->
              groups =
                  v.isEmpty()
                      ? new int[0]
                      : java.util.Arrays.stream(v.split("\\s+"))
                          .mapToInt(Integer::parseUnsignedInt)
                          .toArray();
          default -> {
            // not needed
          }
        }
      }
      if (uid == null || gid == null || groups == null || uid.length != 4 || gid.length != 4) {
        return new Opener(false, false, -1, -1, new int[0]);
      }
      boolean switched = uid[3] != uid[1] || gid[3] != gid[1];
      return switched ? new Opener(true, true, (int) uid[3], (int) gid[3], groups) : PROCESS;
    }

    private static long[] numbers(String v) {
      try {
        return java.util.Arrays.stream(v.split("\\s+")).mapToLong(Long::parseLong).toArray();
      } catch (NumberFormatException e) {
        return null;
      }
    }

    /** The command prefix that runs a program as this identity: none for the process's own. */
    List<String> prefix() {
      if (!switched) {
        return List.of();
      }
      List<String> p = new ArrayList<>();
      p.add("setpriv");
      p.add("--reuid=" + Integer.toUnsignedString(uid));
      p.add("--regid=" + Integer.toUnsignedString(gid));
      if (groups.length == 0) {
        p.add("--clear-groups");
      } else {
        StringBuilder g = new StringBuilder("--groups=");
        for (int i = 0; i < groups.length; i++) {
          g.append(i == 0 ? "" : ",").append(Integer.toUnsignedString(groups[i]));
        }
        p.add(g.toString());
      }
      p.add("--no-new-privs");
      p.add("--");
      return p;
    }

    /** Who, for messages. */
    String who() {
      return switched ? "uid " + Integer.toUnsignedString(uid) : "this process's user";
    }
  }

  /** A directory entry. */
  private record Entry(
      String name, long tableOffset, int tableSize, int flags, int type, int granularityBits) {}

  /** The header fields bitmaps need. */
  private record Header(
      long virtualSize, int clusterBits, boolean consistent, long dirOffset, long dirSize, int n) {}

  private Header header(ImageFile f) throws IOException {
    ByteBuffer h = f.read("qcow2 header", 0, 104, ByteOrder.BIG_ENDIAN, false);
    if (h.getInt(0) != Qcow2Reader.MAGIC) {
      throw f.readError("not a qcow2 image");
    }
    int version = h.getInt(4);
    int clusterBits = h.getInt(20);
    long size = h.getLong(24);
    if (version < 3) {
      return new Header(size, clusterBits, false, 0, 0, 0);
    }
    if (clusterBits < 9 || clusterBits > 21) {
      throw f.readError("cluster_bits " + clusterBits + " at offset 0x14 is out of range");
    }
    long autoclear = h.getLong(88);
    int headerLength = h.getInt(100);
    int clusterSize = 1 << clusterBits;
    ByteBuffer c0 =
        f.read(
            "qcow2 header extensions",
            0,
            (int) Math.min(clusterSize, f.size()),
            ByteOrder.BIG_ENDIAN,
            false);
    int pos = headerLength;
    while (pos + 8 <= c0.limit()) {
      int type = c0.getInt(pos);
      long length = c0.getInt(pos + 4) & 0xffffffffL;
      if (type == EXT_END || length > c0.limit() - pos - 8) {
        break;
      }
      if (type == EXT_BITMAPS) {
        if (length < 24) {
          throw f.readError("bitmaps extension at offset " + hex(pos) + " is too short");
        }
        int n = c0.getInt(pos + 8);
        long dirSize = c0.getLong(pos + 16);
        long dirOffset = c0.getLong(pos + 24);
        if (n < 0 || n > MAX_BITMAPS || dirSize < 0 || dirSize > MAX_DIRECTORY) {
          throw f.readError(
              "bitmaps extension at offset "
                  + hex(pos)
                  + ": "
                  + (n & 0xffffffffL)
                  + " bitmaps in a directory of "
                  + dirSize
                  + " bytes is out of range");
        }
        return new Header(
            size, clusterBits, (autoclear & AUTOCLEAR_BITMAPS) != 0, dirOffset, dirSize, n);
      }
      pos += 8 + (int) ((length + 7) & ~7L);
    }
    return new Header(size, clusterBits, (autoclear & AUTOCLEAR_BITMAPS) != 0, 0, 0, 0);
  }

  private List<Entry> directory(ImageFile f, Header h) throws IOException {
    List<Entry> out = new ArrayList<>();
    if (h.n() == 0) {
      return out;
    }
    ByteBuffer d =
        f.read("bitmap directory", h.dirOffset(), (int) h.dirSize(), ByteOrder.BIG_ENDIAN, false);
    int pos = 0;
    for (int i = 0; i < h.n(); i++) {
      if (pos + 24 > d.limit()) {
        throw f.readError(
            "bitmap directory at offset " + hex(h.dirOffset()) + " ends inside entry " + i);
      }
      long tableOffset = d.getLong(pos);
      long tableSize = d.getInt(pos + 8) & 0xffffffffL;
      int flags = d.getInt(pos + 12);
      int type = d.get(pos + 16) & 0xff;
      int granularityBits = d.get(pos + 17) & 0xff;
      int nameSize = d.getShort(pos + 18) & 0xffff;
      long extra = d.getInt(pos + 20) & 0xffffffffL;
      long entryEnd = pos + 24L + extra + nameSize;
      if (entryEnd > d.limit() || tableSize > Integer.MAX_VALUE / 8) {
        throw f.readError(
            "bitmap directory entry "
                + i
                + " at offset "
                + hex(h.dirOffset() + pos)
                + " overruns the directory");
      }
      byte[] name = new byte[nameSize];
      d.get((int) (pos + 24 + extra), name);
      out.add(
          new Entry(
              new String(name, StandardCharsets.UTF_8),
              tableOffset,
              (int) tableSize,
              flags,
              type,
              granularityBits));
      pos = (int) ((entryEnd + 7) & ~7L);
    }
    return out;
  }

  private static Bitmap describe(Entry e, Header h) {
    boolean enabled = (e.flags() & FLAG_AUTO) != 0;
    boolean inUse = (e.flags() & FLAG_IN_USE) != 0;
    String why = null;
    if (!h.consistent()) {
      why =
          "the image's bitmap metadata is marked inconsistent (autoclear bit 0 clear: a program"
              + " that does not know bitmaps wrote to it)";
    } else if (e.type() != TYPE_DIRTY_TRACKING) {
      why = "bitmap type " + e.type() + " is not dirty tracking";
    } else if (inUse) {
      why = "the bitmap is marked in use (a program has it open, or crashed with it open)";
    } else if (!enabled) {
      why = "the bitmap is disabled: writes after it was disabled are not recorded";
    } else if (e.granularityBits() < 9 || e.granularityBits() > 31) {
      why = "granularity 2^" + e.granularityBits() + " is out of range";
    }
    long granularity = e.granularityBits() <= 62 ? 1L << e.granularityBits() : -1;
    return new Bitmap(e.name(), granularity, enabled, inUse, why == null, why);
  }

  @Override
  public List<Bitmap> bitmaps() throws IOException {
    try (ImageFile f = file.current()) {
      Header h = header(f);
      List<Bitmap> out = new ArrayList<>();
      for (Entry e : directory(f, h)) {
        out.add(describe(e, h));
      }
      return out;
    }
  }

  @Override
  public List<Extent> changed(String name) throws IOException {
    try (ImageFile f = file.current()) {
      Header h = header(f);
      Entry entry = null;
      for (Entry e : directory(f, h)) {
        if (e.name().equals(name)) {
          entry = e;
        }
      }
      if (entry == null) {
        throw new IOException("disk image '" + path + "' has no bitmap '" + name + "'");
      }
      Bitmap b = describe(entry, h);
      if (!b.usable()) {
        throw new IOException(
            "bitmap '" + name + "' of disk image '" + path + "' cannot be trusted: " + b.why());
      }
      long granularity = b.granularity();
      long bits = (h.virtualSize() + granularity - 1) / granularity;
      long clusterSize = 1L << h.clusterBits();
      long bitsPerCluster = clusterSize * 8;
      long expected = (bits + bitsPerCluster - 1) / bitsPerCluster;
      if (entry.tableSize() != expected) {
        throw f.readError(
            "bitmap '"
                + name
                + "' has a table of "
                + entry.tableSize()
                + " entries; a disk of "
                + h.virtualSize()
                + " bytes at granularity "
                + granularity
                + " needs "
                + expected);
      }
      ByteBuffer table =
          f.read(
              "bitmap table of '" + name + "'",
              entry.tableOffset(),
              8 * entry.tableSize(),
              ByteOrder.BIG_ENDIAN,
              false);
      List<Extent> out = new ArrayList<>();
      long runStart = -1;
      for (int t = 0; t < entry.tableSize(); t++) {
        long te = table.getLong(8 * t);
        long firstBit = t * bitsPerCluster;
        long lastBit = Math.min(bits, firstBit + bitsPerCluster);
        long offset = te & TABLE_OFFSET_MASK;
        if (offset == 0) {
          boolean allOnes = (te & 1) != 0;
          if (allOnes) {
            if (runStart < 0) {
              runStart = firstBit;
            }
          } else if (runStart >= 0) {
            add(out, runStart, firstBit, granularity, h.virtualSize());
            runStart = -1;
          }
          continue;
        }
        if ((offset & (clusterSize - 1)) != 0) {
          throw f.readError(
              "bitmap '" + name + "' data cluster " + hex(offset) + " is not cluster-aligned");
        }
        ByteBuffer data =
            f.read(
                "bitmap '" + name + "' data",
                offset,
                (int) clusterSize,
                ByteOrder.BIG_ENDIAN,
                false);
        for (long bit = firstBit; bit < lastBit; bit++) {
          long i = bit - firstBit;
          boolean set = (data.get((int) (i >>> 3)) & (1 << (i & 7))) != 0;
          if (set && runStart < 0) {
            runStart = bit;
          } else if (!set && runStart >= 0) {
            add(out, runStart, bit, granularity, h.virtualSize());
            runStart = -1;
          }
        }
      }
      if (runStart >= 0) {
        add(out, runStart, bits, granularity, h.virtualSize());
      }
      return out;
    }
  }

  private static void add(List<Extent> out, long fromBit, long toBit, long g, long size) {
    long start = fromBit * g;
    long end = Math.min(size, toBit * g);
    if (end > start) {
      out.add(new Extent(start, end - start));
    }
  }

  /**
   * {@inheritDoc}
   *
   * @throws java.nio.file.AccessDeniedException if the identity the image was opened with cannot
   *     write it (checked with {@code access(W_OK)} as that identity first, or qemu-img said so),
   *     or qemu-img run as another identity than this process's failed in any way (the image's
   *     users hold or damaged it): the image cannot be tracked, which fails no backup
   */
  @Override
  public void create(String name) throws IOException {
    checkSameFile("--add", name, "before");
    String denied = notWritable();
    if (denied != null) {
      // judged by name: only if the name still leads to the opened file is it about that file
      checkSameFile("--add", name, "before");
      throw new java.nio.file.AccessDeniedException(path.toString(), null, denied);
    }
    qemuImg("--add", name);
  }

  /**
   * Why the identity the image was opened with cannot write it, or null if it can (or that cannot
   * be told: qemu-img then finds out). Asks the kernel ({@code access(W_OK)}, which also knows
   * ACLs, read-only mounts and immutable files) through {@code test -w} run as that identity.
   */
  private String notWritable() {
    if (!opener.known()) {
      return null;
    }
    if (!opener.switched()) {
      return java.nio.file.Files.isWritable(path)
          ? null
          : "this process cannot write it (a read-only file system, or an immutable file)";
    }
    List<String> cmd = new ArrayList<>(opener.prefix());
    cmd.addAll(List.of("test", "-w", path.toAbsolutePath().toString()));
    try {
      Process p =
          new ProcessBuilder(cmd)
              .directory(new java.io.File("/"))
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.DISCARD)
              .start();
      p.getOutputStream().close();
      if (!p.waitFor(30, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return null;
      }
      return p.exitValue() == 1
          ? opener.who() + ", the identity it was opened with, cannot write it"
          : null;
    } catch (IOException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }

  @Override
  public void remove(String name) throws IOException {
    for (Bitmap b : bitmaps()) {
      if (b.name().equals(name)) {
        qemuImg("--remove", name);
        return;
      }
    }
  }

  /**
   * Refuses to go on unless the image's name still leads to the file that was opened.
   *
   * @param when {@code "before"} or {@code "after"}, for the message
   */
  private void checkSameFile(String op, String name, String when) throws IOException {
    if (!file.isAt()) {
      throw new IOException(
          "disk image '"
              + path
              + "' is no longer the file that was opened and read (it was replaced, or a link on"
              + " the way to it was changed) "
              + when
              + " qemu-img bitmap "
              + op
              + " "
              + name
              + ("before".equals(when)
                  ? ": refusing to run it"
                  : ": the bitmap may have gone to another file; refusing to use it"));
    }
  }

  private void qemuImg(String op, String name) throws IOException {
    if (!opener.known()) {
      throw new IOException(
          "refusing to run qemu-img bitmap "
              + op
              + " on disk image '"
              + path
              + "': the identity it was opened with cannot be told (/proc/thread-self/status is"
              + " unreadable)");
    }
    checkSameFile(op, name, "before");
    List<String> cmd = new ArrayList<>(opener.prefix());
    cmd.addAll(
        List.of("qemu-img", "bitmap", op, "-f", "qcow2", path.toAbsolutePath().toString(), name));
    // "/" as working directory: the opener may not be able to search this process's
    ProcessBuilder pb =
        new ProcessBuilder(cmd).directory(new java.io.File("/")).redirectErrorStream(true);
    // untranslated messages: a denial is told from them
    pb.environment().put("LC_ALL", "C");
    Process p;
    try {
      p = pb.start();
    } catch (IOException e) {
      throw new IOException(
          "changed-block tracking needs qemu-img (Debian package qemu-utils)"
              + (opener.switched() ? " and setpriv (util-linux)" : "")
              + ": "
              + e.getMessage(),
          e);
    }
    p.getOutputStream().close();
    // read on a thread of its own: a qemu-img that hangs is then killed after the timeout
    java.util.concurrent.CompletableFuture<String> output =
        new java.util.concurrent.CompletableFuture<>();
    Thread drain =
        new Thread(
            () -> {
              try {
                output.complete(
                    new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim());
              } catch (IOException e) {
                output.complete("");
              }
            },
            "granule-qemu-img-output");
    drain.setDaemon(true);
    drain.start();
    String out;
    try {
      if (!p.waitFor(120, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException("qemu-img bitmap " + op + " " + name + " on '" + path + "' hung");
      }
      out = output.get(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
      out = "";
    }
    if (p.exitValue() != 0) {
      if (out.contains("Permission denied")
          || out.contains("Read-only file system")
          || out.contains("Operation not permitted")) {
        // the image cannot be written as its opener (it changed since notWritable looked)
        checkSameFile(op, name, "after");
        throw new java.nio.file.AccessDeniedException(
            path.toString(),
            null,
            "qemu-img bitmap "
                + op
                + " run as "
                + opener.who()
                + ", the identity the image was opened with, cannot write it: "
                + out);
      }
      if (opener.switched()) {
        // an image its users can change (opened as them): whatever they did to it (a VM of
        // theirs holding it, bitmaps they damaged) decides whether it is tracked, not whether
        // everyone's backup succeeds (audit13 M1)
        checkSameFile(op, name, "after");
        throw new java.nio.file.AccessDeniedException(
            path.toString(),
            null,
            "qemu-img bitmap "
                + op
                + " run as "
                + opener.who()
                + ", the identity the image was opened with (the users who can change it), failed"
                + (out.contains("lock") ? " (is a running VM of theirs using the image?)" : "")
                + ": "
                + out);
      }
      throw new IOException(
          "qemu-img bitmap "
              + op
              + " "
              + name
              + " on '"
              + path
              + "' failed"
              + (out.contains("lock") ? " (is a running VM using the image?)" : "")
              + (opener.switched()
                  ? " (run as "
                      + opener.who()
                      + ", the identity the image was opened with: the users who can change it)"
                  : "")
              + ": "
              + out);
    }
    checkSameFile(op, name, "after");
  }
}
