package io.granule.engine.internal.nbd;

import io.granule.engine.internal.ops.DirectoryHandle;
import io.granule.engine.internal.ops.SafePath;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.zip.CRC32C;

/**
 * A writable view of a read-only {@link DiskImage}: writes land in a local sparse overlay file in
 * blocks of {@value #BLOCK_SIZE} bytes, never in the base image; reads merge the overlay and the
 * base. Two bitmaps tell, per block, whether it was written (its bytes are in the overlay file) or
 * zeroed (it reads as zeros); a block in neither reads from the base.
 *
 * <p>A temporary overlay ({@link #temporary}) deletes its file on {@link #close}. A kept overlay
 * ({@link #open}) saves its bitmaps next to the data file on {@link #flush} and {@link #close}
 * (atomically, with a checksum), and a later {@link #open} with the same identity resumes it.
 * Writes after the last flush may be lost by a crash, as on a real disk.
 *
 * <p>Thread-safe: reads run concurrently, writes exclusively. Closing does not close the base.
 */
public final class OverlayDisk implements DiskImage {
  /** Granularity of the overlay. */
  public static final int BLOCK_SIZE = 4096;

  private static final long MAP_MAGIC = 0x47524e4f564c3031L; // "GRNOVL01"; never change
  private static final int MAP_VERSION = 1;

  private final DiskImage base;
  private final String identity;
  private final Path data; // as messages name it
  private final Path map; // as messages name it; null for a temporary overlay
  // the kept overlay's directory, held open as resolved and checked: its files are reached
  // through it (/proc/self/fd/N/NAME), never by the directory's name again; null if temporary
  private final DirectoryHandle dir;
  private final FileChannel file;
  private final BitSet written;
  private final BitSet zeroed;
  private final ReadWriteLock lock = new ReentrantReadWriteLock();
  private boolean closed;

  private OverlayDisk(
      DiskImage base,
      String identity,
      Path data,
      Path map,
      DirectoryHandle dir,
      FileChannel file,
      BitSet written,
      BitSet zeroed) {
    this.base = base;
    this.identity = identity;
    this.data = data;
    this.map = map;
    this.dir = dir;
    this.file = file;
    this.written = written;
    this.zeroed = zeroed;
  }

  /** An overlay in a new temporary file in {@code dir}, deleted on {@link #close}. */
  public static OverlayDisk temporary(DiskImage base, Path dir) throws IOException {
    checkSize(base, dir);
    Path f = Files.createTempFile(dir, "granule-overlay-", ".img");
    FileChannel ch =
        FileChannel.open(
            f,
            StandardOpenOption.READ,
            StandardOpenOption.WRITE,
            StandardOpenOption.DELETE_ON_CLOSE);
    return new OverlayDisk(base, null, f, null, null, ch, new BitSet(), new BitSet());
  }

  /**
   * The overlay kept in {@code dir} as {@code NAME.overlay} (data) and {@code NAME.overlay-map}
   * (bitmaps): resumed when both exist and were made for the same {@code identity} (e.g. snapshot
   * id and disk name), created otherwise.
   *
   * <p>{@code dir} is resolved once with {@link SafePath}'s rules (a symbolic link on the way is
   * followed only where root or this user owns it and no one else can change the directory holding
   * it), made {@code 0700} where missing, held open and checked ({@link #requirePrivate}); every
   * file is then created, opened, renamed and deleted through the held directory, never by its name
   * again. Checked by its real path and used by name, the directory could be a link that another
   * user flipped in a sticky directory such as /var/tmp between the check and each later step
   * (audit10 F3): root's overlay data went into that user's file.
   *
   * @throws IOException if the files cannot be opened, or the map is damaged or belongs to another
   *     disk; the message names the file
   */
  public static OverlayDisk open(DiskImage base, Path dir, String name, String identity)
      throws IOException {
    checkSize(base, dir);
    DirectoryHandle held = openDirectory(dir);
    try {
      requirePrivate(dir, held);
      Runnable hook = afterCheck;
      if (hook != null) {
        hook.run();
      }
      String dataName = name + ".overlay";
      String mapName = name + ".overlay-map";
      Path data = dir.resolve(dataName);
      Path map = dir.resolve(mapName);
      BitSet written = new BitSet();
      BitSet zeroed = new BitSet();
      FileChannel ch;
      if (Files.exists(held.entry(mapName), LinkOption.NOFOLLOW_LINKS)) {
        byte[] all;
        try (FileChannel m = openOwn(held, mapName, map, false)) {
          all = readAll(m);
        }
        loadMap(all, map, identity, base.size(), written, zeroed);
        ch =
            Files.exists(held.entry(dataName), LinkOption.NOFOLLOW_LINKS)
                ? openOwn(held, dataName, data, true)
                : createOwn(held, dataName, data, true);
      } else {
        // A data file without its map has no block we can trust: start over.
        Files.deleteIfExists(held.entry(dataName));
        ch = createOwn(held, dataName, data, true);
      }
      return new OverlayDisk(base, identity, data, map, held, ch, written, zeroed);
    } catch (IOException | RuntimeException e) {
      held.close();
      throw e;
    }
  }

  /** Test seam: runs right after the overlay directory was resolved, held and checked. */
  static volatile Runnable afterCheck;

  /** Overlay files: the served disk's written blocks, the owner's alone. */
  private static final java.nio.file.attribute.FileAttribute<?> OWN_ONLY =
      java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));

  private static final java.nio.file.attribute.FileAttribute<?> OWN_DIR =
      java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
          java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));

  /**
   * Resolves {@code named} with {@link SafePath#locate} and holds the directory it names, making
   * the missing ones {@code 0700}, each through the one held above it (not through a link: a link
   * renamed over a name meanwhile is refused).
   */
  private static DirectoryHandle openDirectory(Path named) throws IOException {
    SafePath.Location loc;
    try {
      loc = SafePath.locate(named);
    } catch (SafePath.ChosenLink e) {
      throw new java.nio.file.AccessDeniedException(
          named.toString(),
          null,
          "refusing the overlay directory: "
              + e.describe("overlay directory ", "the overlay would be written where"));
    }
    DirectoryHandle d = loc.dir();
    try {
      if (loc.rest().isEmpty()) {
        return d;
      }
      if (loc.exists()) {
        if (!loc.isDirectory()) {
          throw new java.nio.file.FileSystemException(
              named.toString(), null, "not a directory: name a directory for the overlays");
        }
        DirectoryHandle c = d.child(loc.name(), d.shown().resolve(loc.name()));
        d.close();
        return c;
      }
      for (String part : loc.rest().split("/")) {
        if (part.isEmpty() || part.equals(".")) {
          continue;
        }
        try {
          Files.createDirectory(d.entry(part), OWN_DIR);
        } catch (java.nio.file.FileAlreadyExistsException madeMeanwhile) {
          // judged below like any other directory
        }
        DirectoryHandle c = d.child(part, d.shown().resolve(part));
        d.close();
        d = c;
      }
      return d;
    } catch (IOException | RuntimeException e) {
      d.close();
      throw e;
    }
  }

  /**
   * Creates {@code name} in the held directory, {@code 0600}, exclusively and not through a link
   * ({@code O_CREAT|O_EXCL|O_NOFOLLOW}): for reading and writing if {@code read}, else writing.
   */
  private static FileChannel createOwn(DirectoryHandle dir, String name, Path shown, boolean read)
      throws IOException {
    java.util.Set<java.nio.file.OpenOption> options = new java.util.HashSet<>();
    options.add(StandardOpenOption.WRITE);
    options.add(StandardOpenOption.CREATE_NEW);
    options.add(LinkOption.NOFOLLOW_LINKS);
    if (read) {
      options.add(StandardOpenOption.READ);
    }
    try {
      return FileChannel.open(dir.entry(name), options, OWN_ONLY);
    } catch (java.nio.file.FileAlreadyExistsException e) {
      throw new java.nio.file.FileAlreadyExistsException(
          shown.toString(), null, "created by someone else as the overlay created it");
    }
  }

  /**
   * Opens existing file {@code name} of the held directory, for reading and writing if {@code
   * write}, else reading, if it is this user's own: a regular file (not a link) of this user with
   * one name. Held first (O_PATH, not through a link) and opened through that descriptor, so the
   * file checked is the file opened.
   */
  private static FileChannel openOwn(DirectoryHandle dir, String name, Path shown, boolean write)
      throws IOException {
    java.util.Set<java.nio.file.OpenOption> options =
        write
            ? java.util.Set.of(StandardOpenOption.READ, StandardOpenOption.WRITE)
            : java.util.Set.of(StandardOpenOption.READ);
    if (!dir.held()) {
      requireOwn(
          Files.readAttributes(dir.entry(name), "unix:uid,mode,nlink", LinkOption.NOFOLLOW_LINKS),
          shown);
      java.util.Set<java.nio.file.OpenOption> byName = new java.util.HashSet<>(options);
      byName.add(LinkOption.NOFOLLOW_LINKS);
      return FileChannel.open(dir.entry(name), byName);
    }
    try (DirectoryHandle.NewFile pinned = dir.pin(name)) {
      requireOwn(Files.readAttributes(pinned.self(), "unix:uid,mode,nlink"), shown);
      return FileChannel.open(pinned.self(), options);
    }
  }

  private static void requireOwn(java.util.Map<String, Object> a, Path shown) throws IOException {
    int mode = (Integer) a.get("mode");
    int owner = (Integer) a.get("uid");
    int links = (Integer) a.get("nlink");
    String why = null;
    if ((mode & 0170000) != 0100000) {
      why = "is not a regular file";
    } else if (owner != io.granule.engine.internal.net.PeerUser.self()) {
      why = "is owned by uid " + owner;
    } else if (links != 1) {
      why = "has " + links + " names (hard links)";
    }
    if (why != null) {
      throw new java.nio.file.AccessDeniedException(
          shown.toString(),
          null,
          "refusing the overlay file: it "
              + why
              + ", not a file this overlay made; delete it (and its map) to start over");
    }
  }

  private static byte[] readAll(FileChannel ch) throws IOException {
    long size = ch.size();
    if (size > Integer.MAX_VALUE - 64) {
      throw new IOException("overlay map of " + size + " bytes");
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream((int) size);
    ByteBuffer b = ByteBuffer.allocate(64 * 1024);
    while (ch.read(b) >= 0) {
      b.flip();
      out.write(b.array(), 0, b.limit());
      b.clear();
    }
    return out.toByteArray();
  }

  /**
   * Refuses the directory held unless it and every directory above it are owned by root or this
   * user and writable by no one else (a sticky directory above it aside, as /tmp): root's {@code
   * --overlay /var/tmp/ov}, made first by another user with a link {@code NAME.overlay-map.tmp} to
   * a file of root's, truncated that file and wrote the map into it. The directories judged are the
   * held one and those above it as the kernel finds them from it ({@code /proc/self/fd/N/..}, and
   * so on up to {@code /}), not names resolved again.
   */
  static void requirePrivate(Path named, DirectoryHandle held) throws IOException {
    int self = io.granule.engine.internal.net.PeerUser.self();
    // the chain, from the directory held up to /, as (name for messages, attributes)
    java.util.List<Path> names = new java.util.ArrayList<>();
    java.util.List<java.util.Map<String, Object>> attrs = new java.util.ArrayList<>();
    if (held.held()) {
      Path shown = Files.readSymbolicLink(held.self());
      java.util.Map<String, Object> top = Files.readAttributes(Path.of("/"), "unix:dev,ino");
      Path at = held.self();
      for (int depth = 0; ; depth++) {
        java.util.Map<String, Object> a = Files.readAttributes(at, "unix:uid,mode,dev,ino");
        names.add(shown);
        attrs.add(a);
        if (top.get("dev").equals(a.get("dev")) && top.get("ino").equals(a.get("ino"))) {
          break;
        }
        if (depth > 4096) {
          throw new java.nio.file.FileSystemException(
              named.toString(), null, "refusing the overlay directory: / not found above it");
        }
        at = at.resolve("..");
        shown = shown.getParent() == null ? shown : shown.getParent();
      }
    } else {
      Path real = named.toRealPath();
      Path at = real.getRoot();
      java.util.List<Path> down = new java.util.ArrayList<>();
      down.add(at);
      for (Path part : real) {
        at = at.resolve(part);
        down.add(at);
      }
      for (int i = down.size() - 1; i >= 0; i--) {
        names.add(down.get(i));
        attrs.add(
            Files.readAttributes(
                down.get(i), "unix:uid,mode", java.nio.file.LinkOption.NOFOLLOW_LINKS));
      }
    }
    // judged from / down, so the refusal names the highest directory at fault
    for (int i = names.size() - 1; i >= 0; i--) {
      Path p = names.get(i);
      java.util.Map<String, Object> a = attrs.get(i);
      int owner = (Integer) a.get("uid");
      int mode = (Integer) a.get("mode");
      boolean last = i == 0;
      String why = null;
      if (owner != 0 && owner != self) {
        why = "is owned by uid " + owner;
      } else if ((mode & 0022) != 0 && (last || (mode & 01000) == 0)) {
        why = "can be written by " + ((mode & 0002) != 0 ? "every user" : "its group");
      }
      if (why != null) {
        throw new java.nio.file.AccessDeniedException(
            named.toString(),
            null,
            "refusing the overlay directory: "
                + p
                + " "
                + why
                + ", who could put a link there to a file of yours; name a directory only you"
                + " (and root) can write, e.g. one made with mkdir -m 700");
      }
    }
  }

  private static void checkSize(DiskImage base, Path dir) throws IOException {
    if (base.size() / BLOCK_SIZE >= Integer.MAX_VALUE) {
      throw new IOException(
          "unable to create an overlay in '"
              + dir
              + "': the disk is larger than "
              + ((long) Integer.MAX_VALUE * BLOCK_SIZE)
              + " bytes; serve it read-only");
    }
  }

  @Override
  public long size() {
    return base.size();
  }

  @Override
  public String format() {
    return base.format();
  }

  /** Number of bytes in blocks written or zeroed through this overlay (its footprint). */
  public long bytesChanged() {
    lock.readLock().lock();
    try {
      return (long) (written.cardinality() + zeroed.cardinality()) * BLOCK_SIZE;
    } finally {
      lock.readLock().unlock();
    }
  }

  @Override
  public void read(long offset, ByteBuffer dst) throws IOException {
    checkRange(offset, dst.remaining());
    lock.readLock().lock();
    try {
      long pos = offset;
      long end = offset + dst.remaining();
      while (pos < end) {
        int block = (int) (pos / BLOCK_SIZE);
        int state = state(block);
        long runEnd = Math.min(end, (long) nextChange(block, state) * BLOCK_SIZE);
        ByteBuffer part = dst.slice(dst.position(), (int) (runEnd - pos));
        if (state == 0) {
          base.read(pos, part);
        } else if (state == 1) {
          readFully(part, pos);
        } else {
          fillZeros(part);
        }
        dst.position(dst.position() + (int) (runEnd - pos));
        pos = runEnd;
      }
    } finally {
      lock.readLock().unlock();
    }
  }

  /** Writes {@code src} at {@code offset} into the overlay. */
  public void write(long offset, ByteBuffer src) throws IOException {
    checkRange(offset, src.remaining());
    lock.writeLock().lock();
    try {
      long end = offset + src.remaining();
      prepareEdge(offset, end);
      prepareEdge(end - 1, end);
      int first = (int) (offset / BLOCK_SIZE);
      int last = (int) ((end - 1) / BLOCK_SIZE);
      writeFully(src, offset);
      written.set(first, last + 1);
      zeroed.clear(first, last + 1);
    } finally {
      lock.writeLock().unlock();
    }
  }

  /** Makes {@code [offset, offset + length)} read as zeros (NBD write zeroes and trim). */
  public void writeZeroes(long offset, long length) throws IOException {
    checkRange(offset, length);
    if (length == 0) {
      return;
    }
    lock.writeLock().lock();
    try {
      long end = offset + length;
      long fullStart = ceil(offset);
      long fullEnd = end / BLOCK_SIZE * BLOCK_SIZE;
      if (fullStart >= fullEnd) {
        zeroPartial(offset, end);
        return;
      }
      zeroPartial(offset, fullStart);
      zeroPartial(fullEnd, end);
      zeroed.set((int) (fullStart / BLOCK_SIZE), (int) (fullEnd / BLOCK_SIZE));
      written.clear((int) (fullStart / BLOCK_SIZE), (int) (fullEnd / BLOCK_SIZE));
    } finally {
      lock.writeLock().unlock();
    }
  }

  private void zeroPartial(long from, long to) throws IOException {
    if (from < to) {
      prepareEdge(from, to);
      prepareEdge(to - 1, to);
      writeFully(ByteBuffer.allocate((int) (to - from)), from);
      int first = (int) (from / BLOCK_SIZE);
      int last = (int) ((to - 1) / BLOCK_SIZE);
      written.set(first, last + 1);
      zeroed.clear(first, last + 1);
    }
  }

  /**
   * Before a write that covers only part of the block holding {@code pos}, copies the block's
   * current contents (base or zeros) into the overlay file so the rest of it survives.
   */
  private void prepareEdge(long pos, long writeEnd) throws IOException {
    int block = (int) (pos / BLOCK_SIZE);
    long start = (long) block * BLOCK_SIZE;
    long blockEnd = Math.min(start + BLOCK_SIZE, size());
    int state = state(block);
    if (state == 1) {
      return;
    }
    ByteBuffer b = ByteBuffer.allocate((int) (blockEnd - start));
    if (state == 0) {
      base.read(start, b);
      b.flip();
    }
    writeFully(b, start);
    written.set(block);
    zeroed.clear(block);
  }

  /** Makes every write so far durable; a kept overlay also saves its bitmaps. */
  public void flush() throws IOException {
    lock.writeLock().lock();
    try {
      file.force(false);
      if (map != null) {
        saveMap();
      }
    } finally {
      lock.writeLock().unlock();
    }
  }

  @Override
  public List<Extent> allocation(long offset, long length) throws IOException {
    long end = Math.min(offset + length, size());
    List<Extent> out = new ArrayList<>();
    lock.readLock().lock();
    try {
      long pos = offset;
      while (pos < end) {
        int block = (int) (pos / BLOCK_SIZE);
        int state = state(block);
        long runEnd = Math.min(end, (long) nextChange(block, state) * BLOCK_SIZE);
        if (state == 0) {
          for (Extent e : base.allocation(pos, runEnd - pos)) {
            add(out, e.offset(), e.end());
          }
        } else if (state == 1) {
          add(out, pos, runEnd);
        }
        pos = runEnd;
      }
    } finally {
      lock.readLock().unlock();
    }
    return out;
  }

  private static void add(List<Extent> out, long from, long to) {
    if (!out.isEmpty() && out.get(out.size() - 1).end() == from) {
      Extent last = out.remove(out.size() - 1);
      out.add(new Extent(last.offset(), to - last.offset()));
    } else {
      out.add(new Extent(from, to - from));
    }
  }

  /** 0: base, 1: written, 2: zeroed. */
  private int state(int block) {
    return written.get(block) ? 1 : zeroed.get(block) ? 2 : 0;
  }

  /** The first block after {@code block} whose state differs from {@code state}. */
  private int nextChange(int block, int state) {
    if (state == 1) {
      return written.nextClearBit(block);
    }
    if (state == 2) {
      return zeroed.nextClearBit(block);
    }
    int w = written.nextSetBit(block);
    int z = zeroed.nextSetBit(block);
    int limit = (int) ((size() + BLOCK_SIZE - 1) / BLOCK_SIZE);
    return Math.min(w < 0 ? limit : w, z < 0 ? limit : z);
  }

  private void checkRange(long offset, long length) throws EOFException {
    if (offset < 0 || length < 0 || offset > size() - length) {
      throw new EOFException(
          "range outside the disk: offset=" + offset + " length=" + length + " size=" + size());
    }
    if (closed) {
      throw new IllegalStateException("overlay '" + data + "' is closed");
    }
  }

  private static long ceil(long pos) {
    return (pos + BLOCK_SIZE - 1) / BLOCK_SIZE * BLOCK_SIZE;
  }

  private void readFully(ByteBuffer dst, long pos) throws IOException {
    ByteBuffer d = dst.duplicate();
    long p = pos;
    while (d.hasRemaining()) {
      int n = file.read(d, p);
      if (n < 0) {
        // Past the end of the sparse file: zeros.
        fillZeros(d);
        return;
      }
      p += n;
    }
  }

  private void writeFully(ByteBuffer src, long pos) throws IOException {
    long p = pos;
    while (src.hasRemaining()) {
      p += file.write(src, p);
    }
  }

  private void saveMap() throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeLong(MAP_MAGIC);
      out.writeInt(MAP_VERSION);
      out.writeUTF(identity);
      out.writeLong(size());
      out.writeInt(BLOCK_SIZE);
      writeBits(out, written);
      writeBits(out, zeroed);
      CRC32C crc = new CRC32C();
      crc.update(bytes.toByteArray());
      out.writeInt((int) crc.getValue());
    }
    // through the held directory; a leftover .tmp (a crash between its creation and the rename)
    // is removed, not written through, and the new one made exclusively
    String mapName = map.getFileName().toString();
    String tmpName = mapName + ".tmp";
    Path tmp = dir.entry(tmpName);
    Files.deleteIfExists(tmp);
    try (FileChannel ch = createOwn(dir, tmpName, map.resolveSibling(tmpName), false)) {
      ByteBuffer b = ByteBuffer.wrap(bytes.toByteArray());
      while (b.hasRemaining()) {
        ch.write(b);
      }
      ch.force(true);
    }
    Files.move(
        tmp,
        dir.entry(mapName),
        StandardCopyOption.ATOMIC_MOVE,
        StandardCopyOption.REPLACE_EXISTING);
  }

  private static void writeBits(DataOutputStream out, BitSet bits) throws IOException {
    long[] words = bits.toLongArray();
    out.writeInt(words.length);
    for (long w : words) {
      out.writeLong(w);
    }
  }

  private static void loadMap(
      byte[] all, Path map, String identity, long size, BitSet written, BitSet zeroed)
      throws IOException {
    if (all.length < 4) {
      throw damaged(map, "truncated");
    }
    CRC32C crc = new CRC32C();
    crc.update(all, 0, all.length - 4);
    int expected = ByteBuffer.wrap(all, all.length - 4, 4).getInt();
    if ((int) crc.getValue() != expected) {
      throw damaged(
          map,
          String.format(
              java.util.Locale.ROOT,
              "checksum mismatch: actual=%08x expected=%08x",
              (int) crc.getValue(),
              expected));
    }
    try (DataInputStream in =
        new DataInputStream(new java.io.ByteArrayInputStream(all, 0, all.length - 4))) {
      if (in.readLong() != MAP_MAGIC) {
        throw damaged(map, "not an overlay map (wrong magic)");
      }
      int version = in.readInt();
      if (version != MAP_VERSION) {
        throw damaged(map, "unsupported version " + version + " (supported: " + MAP_VERSION + ")");
      }
      String id = in.readUTF();
      long sz = in.readLong();
      int bs = in.readInt();
      if (!id.equals(identity) || sz != size || bs != BLOCK_SIZE) {
        throw new IOException(
            "overlay '"
                + map
                + "' belongs to "
                + id
                + " (size "
                + sz
                + "), not to "
                + identity
                + " (size "
                + size
                + "): choose another --overlay directory or delete it");
      }
      readBits(in, written);
      readBits(in, zeroed);
    }
  }

  private static void readBits(DataInputStream in, BitSet into) throws IOException {
    int n = in.readInt();
    if (n < 0 || n > in.available() / 8) {
      throw new EOFException("bitmap of " + n + " words");
    }
    long[] words = new long[n];
    for (int i = 0; i < n; i++) {
      words[i] = in.readLong();
    }
    into.or(BitSet.valueOf(words));
  }

  private static IOException damaged(Path map, String why) {
    return new IOException(
        "overlay map '" + map + "' is damaged: " + why + "; delete it and its .overlay file");
  }

  /** Closes the overlay file: a temporary overlay is deleted, a kept one saved. */
  @Override
  public void close() throws IOException {
    lock.writeLock().lock();
    try {
      if (closed) {
        return;
      }
      if (map != null) {
        file.force(false);
        saveMap();
      }
      closed = true;
      try {
        file.close();
      } finally {
        if (dir != null) {
          dir.close();
        }
      }
    } finally {
      lock.writeLock().unlock();
    }
  }

  static void fillZeros(ByteBuffer b) {
    byte[] zeros = new byte[Math.min(b.remaining(), 64 * 1024)];
    while (b.hasRemaining()) {
      b.put(zeros, 0, Math.min(zeros.length, b.remaining()));
    }
  }
}
