package io.granule.plugin.vmdisk.internal.fs.ntfs;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;

import io.granule.engine.spi.DirectoryEntry;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.Extent;
import io.granule.engine.spi.FileKind;
import io.granule.engine.spi.FileNode;
import io.granule.engine.spi.FileSystem;
import io.granule.plugin.vmdisk.internal.fs.BlockCache;
import io.granule.plugin.vmdisk.internal.fs.Names;
import io.granule.plugin.vmdisk.internal.fs.ntfs.MftRecord.Attribute;
import io.granule.plugin.vmdisk.internal.fs.ntfs.MftRecord.Run;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads an NTFS filesystem in place: the MFT (located through its own runlist, extension records
 * through attribute lists), resident and non-resident data with sparse runs, the {@code $I30}
 * directory index (root and allocation blocks, walked as a tree from the root), reparse-point and
 * Interix (ntfs-3g) symbolic links, hard links.
 *
 * <p>The log ($LogFile) is not replayed. NTFS records no POSIX mode or owner that this reader
 * decodes: nodes have mode 0 and uid/gid -1. System files (MFT records below 16) are not listed.
 * Compressed and encrypted files are refused. Thread-safe.
 */
public final class NtfsReader implements FileSystem {
  static final long ROOT = 5;
  private static final long FIRST_USER_RECORD = 16;
  private static final int STANDARD_INFORMATION = 0x10;
  private static final int ATTRIBUTE_LIST = 0x20;
  private static final int DATA = 0x80;
  private static final int INDEX_ROOT = 0x90;
  private static final int INDEX_ALLOCATION = 0xa0;
  private static final int REPARSE_POINT = 0xc0;
  private static final int INDX_MAGIC = 0x58444e49; // "INDX"
  private static final int FLAG_COMPRESSED = 0x00ff;
  private static final int FLAG_ENCRYPTED = 0x4000;
  private static final int FILE_ATTRIBUTE_SYSTEM = 0x4;
  private static final long TAG_SYMLINK = 0xa000000cL;
  private static final long TAG_MOUNT_POINT = 0xa0000003L;
  private static final int MAX_ATTRIBUTE_LIST = 1 << 20;
  private static final int MAX_LINK = 16 * 1024;
  private static final long FILETIME_EPOCH = 116444736000000000L;
  private static final byte[] INTERIX_LINK = "IntxLNK\1".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] INTERIX_CHR = "IntxCHR\0".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] INTERIX_BLK = "IntxBLK\0".getBytes(StandardCharsets.US_ASCII);

  private final BlockCache volume;
  private final NtfsBoot boot;
  private final Stream mft;

  /** A data stream: resident bytes, or runs with sizes. */
  private record Stream(
      ByteBuffer resident, List<Run> runs, long size, long initialized, int flags) {}

  private NtfsReader(BlockCache volume, NtfsBoot boot, Stream mft) {
    this.volume = volume;
    this.boot = boot;
    this.mft = mft;
  }

  /**
   * Opens the NTFS filesystem on {@code volume}.
   *
   * @throws IOException if the volume holds no NTFS filesystem, or its boot sector, MFT or root
   *     directory is damaged
   */
  public static NtfsReader open(DiskImage image) throws IOException {
    if (image.size() < 512) {
      throw new IOException(
          "ntfs: the volume has " + image.size() + " bytes, too few for a boot" + " sector");
    }
    ByteBuffer raw = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
    image.read(0, raw);
    NtfsBoot boot = NtfsBoot.parse(raw.flip(), image.size());
    BlockCache volume = new BlockCache(image, 512, "ntfs");
    long offset = boot.mftCluster() * boot.clusterSize();
    MftRecord zero =
        MftRecord.parse(
            0, offset, volume.bytes(offset, boot.recordSize(), "mft record 0"), boot.clusters());
    List<Attribute> data = new ArrayList<>();
    for (Attribute a : zero.attributes()) {
      if (a.type() == DATA && a.name().isEmpty()) {
        data.add(a);
      }
    }
    if (data.isEmpty() || data.get(0).resident() || data.get(0).startVcn() != 0) {
      throw new IOException(
          fmt("ntfs: mft record 0 at offset %s has no usable $DATA attribute", hex(offset)));
    }
    Stream bootstrap = stream(data, "ntfs: mft record 0");
    NtfsReader reader = new NtfsReader(volume, boot, bootstrap);
    // A fragmented MFT continues its $DATA in extension records named by the attribute list.
    NtfsReader full =
        new NtfsReader(
            volume, boot, stream(reader.attributes(zero, DATA, ""), "ntfs: mft record 0"));
    MftRecord root = full.record(ROOT);
    if ((root.flags() & MftRecord.FLAG_DIRECTORY) == 0) {
      throw new IOException(
          fmt(
              "ntfs: root directory (mft record 5 at offset %s) is not a" + " directory",
              hex(root.offset())));
    }
    return full;
  }

  @Override
  public FileNode root() throws IOException {
    return node(record(ROOT));
  }

  @Override
  public FileNode lookup(String path) throws IOException {
    MftRecord current = record(ROOT);
    StringBuilder walked = new StringBuilder();
    for (String name : Names.components(path, "ntfs")) {
      if ((current.flags() & MftRecord.FLAG_DIRECTORY) == 0) {
        throw new NotDirectoryException(walked.toString());
      }
      walked.append('/').append(name);
      long[] found = {-1};
      entries(
          current,
          (ref, entryName) -> {
            if (entryName.equals(name)) {
              found[0] = ref;
              return false;
            }
            return true;
          });
      MftRecord next = found[0] < 0 ? null : referenced(found[0]);
      if (next == null) {
        throw new NoSuchFileException(walked.toString());
      }
      current = next;
    }
    return node(current);
  }

  @Override
  public List<DirectoryEntry> list(FileNode dir) throws IOException {
    MftRecord record = record(dir.id());
    if ((record.flags() & MftRecord.FLAG_DIRECTORY) == 0) {
      throw new NotDirectoryException(fmt("ntfs: mft record %d", dir.id()));
    }
    List<DirectoryEntry> out = new ArrayList<>();
    Set<String> seen = new HashSet<>();
    entries(
        record,
        (ref, name) -> {
          if (DirectoryEntry.isValidName(name) && !seen.contains(name)) {
            MftRecord child = referenced(ref);
            if (child != null) {
              seen.add(name);
              out.add(new DirectoryEntry(name, node(child)));
            }
          }
          return true;
        });
    return out;
  }

  @Override
  public int read(FileNode file, long position, ByteBuffer dst) throws IOException {
    MftRecord record = record(file.id());
    if (kind(record) != FileKind.FILE) {
      throw new IOException(fmt("ntfs: mft record %d is not a regular file", file.id()));
    }
    return read(data(record), position, dst, fmt("mft record %d $DATA", file.id()));
  }

  @Override
  public String readLink(FileNode link) throws IOException {
    MftRecord record = record(link.id());
    if (kind(record) != FileKind.SYMLINK) {
      throw new IOException(fmt("ntfs: mft record %d is not a symbolic link", link.id()));
    }
    return target(record);
  }

  @Override
  public List<Extent> allocation(FileNode file) throws IOException {
    MftRecord record = record(file.id());
    if (kind(record) != FileKind.FILE) {
      throw new IOException(fmt("ntfs: mft record %d is not a regular file", file.id()));
    }
    Stream s = data(record);
    List<Extent> out = new ArrayList<>();
    if (s.size() == 0) {
      return out;
    }
    if (s.resident() != null) {
      out.add(new Extent(0, s.size()));
      return out;
    }
    long cs = boot.clusterSize();
    for (Run r : s.runs()) {
      if (r.lcn() < 0) {
        continue;
      }
      if (r.vcn() >= (s.size() + cs - 1) / cs) {
        break;
      }
      long start = r.vcn() * cs;
      long end = Math.min(s.size(), (r.vcn() + r.length()) * cs);
      Extent last = out.isEmpty() ? null : out.get(out.size() - 1);
      if (last != null && last.end() == start) {
        out.set(out.size() - 1, new Extent(last.offset(), end - last.offset()));
      } else {
        out.add(new Extent(start, end - start));
      }
    }
    return out;
  }

  @Override
  public void close() {}

  /** The volume byte offset of byte {@code position} of a file's data, -1 for none (tests). */
  long physicalOf(long record, long position) throws IOException {
    return physical(data(record(record)), position);
  }

  // --- records and attributes ---

  MftRecord record(long number) throws IOException {
    long at = number * boot.recordSize();
    if (number < 0 || number > mft.size() / boot.recordSize() - 1) {
      throw new IOException(
          fmt(
              "ntfs: mft record %d does not exist (the mft holds %d)",
              number, mft.size() / boot.recordSize()));
    }
    ByteBuffer b = ByteBuffer.allocate(boot.recordSize());
    read(mft, at, b, "mft record " + number);
    long offset = physical(mft, at);
    MftRecord r = MftRecord.parse(number, offset, b.clear(), boot.clusters());
    if ((r.flags() & MftRecord.FLAG_IN_USE) == 0) {
      throw new IOException(
          fmt("ntfs: mft record %d at offset %s is not in use", number, hex(offset)));
    }
    return r;
  }

  /** The record a directory entry names, or null if the entry is stale or a system file. */
  private MftRecord referenced(long ref) throws IOException {
    long number = ref & 0xffffffffffffL;
    if (number < FIRST_USER_RECORD) {
      return null;
    }
    MftRecord r = record(number);
    int sequence = (int) (ref >>> 48);
    return sequence != 0 && sequence != r.sequence() || r.baseRecord() != 0 ? null : r;
  }

  /** The byte offset in the volume of byte {@code position} of a stream, for messages. */
  private long physical(Stream s, long position) {
    long cs = boot.clusterSize();
    for (Run r : s.runs()) {
      if (r.vcn() <= position / cs && position / cs < r.vcn() + r.length() && r.lcn() >= 0) {
        return (r.lcn() + position / cs - r.vcn()) * cs + position % cs;
      }
    }
    return -1;
  }

  /** Attributes of {@code type} named {@code name}, from the base record and its extensions. */
  List<Attribute> attributes(MftRecord base, int type, String name) throws IOException {
    Attribute list = null;
    List<Attribute> out = new ArrayList<>();
    for (Attribute a : base.attributes()) {
      if (a.type() == ATTRIBUTE_LIST) {
        list = a;
      } else if (a.type() == type && a.name().equals(name)) {
        out.add(a);
      }
    }
    if (list != null) {
      String where = fmt("ntfs: mft record %d attribute list", base.number());
      ByteBuffer b;
      if (list.resident()) {
        b = list.value();
      } else {
        if (list.dataSize() > MAX_ATTRIBUTE_LIST) {
          throw new IOException(
              fmt("%s: %d bytes (at most %d)", where, list.dataSize(), MAX_ATTRIBUTE_LIST));
        }
        b = ByteBuffer.allocate((int) list.dataSize()).order(ByteOrder.LITTLE_ENDIAN);
        read(stream(List.of(list), where), 0, b, where);
        b.clear();
      }
      Map<Long, MftRecord> extensions = new HashMap<>();
      int at = 0;
      while (at + 26 <= b.capacity()) {
        int entryType = b.getInt(at);
        int len = b.getShort(at + 4) & 0xffff;
        int nameLen = b.get(at + 6) & 0xff;
        int nameOff = b.get(at + 7) & 0xff;
        if (len < 26 || at + len > b.capacity() || nameOff + 2 * nameLen > len) {
          throw new IOException(fmt("%s: entry at +%d has length %d", where, at, len));
        }
        byte[] n = new byte[2 * nameLen];
        b.get(at + nameOff, n);
        long segment = b.getLong(at + 16) & 0xffffffffffffL;
        int id = b.getShort(at + 24) & 0xffff;
        if (entryType == type
            && new String(n, StandardCharsets.UTF_16LE).equals(name)
            && segment != base.number()) {
          MftRecord ext = extensions.get(segment);
          if (ext == null) {
            ext = record(segment);
            if (ext.baseRecord() != base.number()) {
              throw new IOException(
                  fmt(
                      "%s: entry at +%d names mft record %d, which belongs to" + " record %d",
                      where, at, segment, ext.baseRecord()));
            }
            extensions.put(segment, ext);
          }
          for (Attribute a : ext.attributes()) {
            if (a.type() == type && a.id() == id && a.name().equals(name)) {
              out.add(a);
            }
          }
        }
        at += len;
      }
    }
    out.sort(Comparator.comparingLong(Attribute::startVcn));
    return out;
  }

  /** Joins the pieces of one non-resident attribute (or takes a resident one) into a stream. */
  private static Stream stream(List<Attribute> pieces, String where) throws IOException {
    Attribute first = pieces.get(0);
    if (first.resident()) {
      return new Stream(
          first.value(), List.of(), first.dataSize(), first.dataSize(), first.flags());
    }
    List<Run> runs = new ArrayList<>();
    long next = 0;
    for (Attribute a : pieces) {
      if (a.resident() || a.startVcn() != next) {
        throw new IOException(
            fmt(
                "%s: attribute pieces do not follow each other (vcn %d," + " expected %d)",
                where, a.startVcn(), next));
      }
      for (Run r : a.runs()) {
        runs.add(r);
        next = r.vcn() + r.length();
      }
    }
    if (first.initializedSize() > first.dataSize()) {
      throw new IOException(
          fmt(
              "%s: initialized size %d past the data size %d",
              where, first.initializedSize(), first.dataSize()));
    }
    return new Stream(null, runs, first.dataSize(), first.initializedSize(), first.flags());
  }

  /** The unnamed data stream, whatever its flags: its size is valid even if it is compressed. */
  private Stream rawData(MftRecord r) throws IOException {
    List<Attribute> pieces = attributes(r, DATA, "");
    if (pieces.isEmpty()) {
      return new Stream(ByteBuffer.allocate(0), List.of(), 0, 0, 0);
    }
    return stream(
        pieces, fmt("ntfs: mft record %d at offset %s: $DATA", r.number(), hex(r.offset())));
  }

  /** The unnamed data stream, refused if it is compressed or encrypted. */
  private Stream data(MftRecord r) throws IOException {
    String where = fmt("ntfs: mft record %d at offset %s: $DATA", r.number(), hex(r.offset()));
    Stream s = rawData(r);
    if ((s.flags() & FLAG_COMPRESSED) != 0) {
      throw new IOException(where + " is compressed; compressed files are not supported");
    }
    if ((s.flags() & FLAG_ENCRYPTED) != 0) {
      throw new IOException(where + " is encrypted (EFS); encrypted files are not supported");
    }
    return s;
  }

  private int read(Stream s, long position, ByteBuffer dst, String what) throws IOException {
    if (position < 0) {
      throw new IllegalArgumentException("negative position " + position);
    }
    if (position >= s.size()) {
      return -1;
    }
    int n = (int) Math.min(dst.remaining(), s.size() - position);
    if (s.resident() != null) {
      dst.put(s.resident().slice((int) position, n));
      return n;
    }
    long cs = boot.clusterSize();
    int left = n;
    while (left > 0) {
      long vcn = position / cs;
      long within = position % cs;
      Run run = find(s.runs(), vcn);
      long runBytes;
      long physical = -1;
      if (run == null || run.vcn() > vcn) {
        runBytes = run == null ? left : (run.vcn() - vcn) * cs - within;
      } else {
        runBytes = (run.vcn() + run.length() - vcn) * cs - within;
        physical = run.lcn() < 0 ? -1 : (run.lcn() + vcn - run.vcn()) * cs + within;
      }
      int chunk = (int) Math.min(left, runBytes);
      if (position >= s.initialized()) {
        physical = -1;
      } else {
        chunk = (int) Math.min(chunk, s.initialized() - position);
      }
      if (physical < 0) {
        for (int i = 0; i < chunk; i++) {
          dst.put((byte) 0);
        }
      } else {
        volume.read(physical, dst.slice(dst.position(), chunk), what);
        dst.position(dst.position() + chunk);
      }
      position += chunk;
      left -= chunk;
    }
    return n;
  }

  private static Run find(List<Run> runs, long vcn) {
    int lo = 0;
    int hi = runs.size() - 1;
    while (lo <= hi) {
      int mid = (lo + hi) >>> 1;
      Run r = runs.get(mid);
      if (r.vcn() + r.length() <= vcn) {
        lo = mid + 1;
      } else if (r.vcn() > vcn) {
        hi = mid - 1;
      } else {
        return r;
      }
    }
    return lo < runs.size() ? runs.get(lo) : null;
  }

  // --- nodes ---

  private FileNode node(MftRecord r) throws IOException {
    ByteBuffer si = null;
    for (Attribute a : r.attributes()) {
      if (a.type() == STANDARD_INFORMATION && a.resident() && a.value().capacity() >= 36) {
        si = a.value();
      }
    }
    if (si == null) {
      throw new IOException(
          fmt(
              "ntfs: mft record %d at offset %s has no $STANDARD_INFORMATION",
              r.number(), hex(r.offset())));
    }
    FileKind kind = kind(r);
    long size =
        switch (kind) {
          case FILE -> rawData(r).size();
          case SYMLINK -> target(r).getBytes(StandardCharsets.UTF_8).length;
          default -> 0;
        };
    return new FileNode(
        r.number(),
        kind,
        size,
        0,
        -1,
        -1,
        r.linkCount(),
        time(si.getLong(8)),
        time(si.getLong(24)),
        time(si.getLong(16)),
        time(si.getLong(0)));
  }

  private static Instant time(long filetime) {
    long t = filetime - FILETIME_EPOCH;
    return Instant.ofEpochSecond(
        Math.floorDiv(t, 10_000_000L), Math.floorMod(t, 10_000_000L) * 100);
  }

  private FileKind kind(MftRecord r) throws IOException {
    if ((r.flags() & MftRecord.FLAG_DIRECTORY) != 0) {
      return FileKind.DIRECTORY;
    }
    List<Attribute> reparse = attributes(r, REPARSE_POINT, "");
    if (!reparse.isEmpty()) {
      ByteBuffer v = reparse.get(0).value();
      long tag = v == null || v.capacity() < 4 ? 0 : Integer.toUnsignedLong(v.getInt(0));
      return tag == TAG_SYMLINK || tag == TAG_MOUNT_POINT ? FileKind.SYMLINK : FileKind.OTHER;
    }
    int attributes = 0;
    for (Attribute a : r.attributes()) {
      if (a.type() == STANDARD_INFORMATION && a.resident() && a.value().capacity() >= 36) {
        attributes = a.value().getInt(32);
      }
    }
    if ((attributes & FILE_ATTRIBUTE_SYSTEM) != 0) {
      Stream s = rawData(r);
      if ((s.flags() & (FLAG_COMPRESSED | FLAG_ENCRYPTED)) != 0) {
        return FileKind.FILE;
      }
      if (s.size() == 0) {
        return FileKind.OTHER; // an Interix FIFO or socket, as ntfs-3g stores them
      }
      byte[] head = interixHead(s);
      if (java.util.Arrays.equals(head, INTERIX_LINK)) {
        return FileKind.SYMLINK;
      }
      if (java.util.Arrays.equals(head, INTERIX_CHR)
          || java.util.Arrays.equals(head, INTERIX_BLK)) {
        return FileKind.OTHER;
      }
    }
    return FileKind.FILE;
  }

  private byte[] interixHead(Stream s) throws IOException {
    if (s.size() < 8) {
      return new byte[0];
    }
    ByteBuffer b = ByteBuffer.allocate(8);
    read(s, 0, b, "interix header");
    return b.array();
  }

  private String target(MftRecord r) throws IOException {
    String where = fmt("ntfs: mft record %d at offset %s", r.number(), hex(r.offset()));
    List<Attribute> reparse = attributes(r, REPARSE_POINT, "");
    if (reparse.isEmpty()) {
      Stream s = data(r);
      if (s.size() > MAX_LINK || s.size() < 8) {
        throw new IOException(fmt("%s: interix symbolic link of %d bytes", where, s.size()));
      }
      ByteBuffer b = ByteBuffer.allocate((int) s.size());
      read(s, 0, b, "interix symbolic link");
      return new String(b.array(), 8, b.capacity() - 8 & ~1, StandardCharsets.UTF_16LE);
    }
    ByteBuffer v = reparse.get(0).value();
    if (v == null || v.capacity() < 16) {
      throw new IOException(where + ": reparse point is not resident or too short");
    }
    long tag = Integer.toUnsignedLong(v.getInt(0));
    int buffer = tag == TAG_SYMLINK ? 20 : 16;
    int subOff = v.getShort(8) & 0xffff;
    int subLen = v.getShort(10) & 0xffff;
    int printOff = v.getShort(12) & 0xffff;
    int printLen = v.getShort(14) & 0xffff;
    boolean relative = tag == TAG_SYMLINK && v.capacity() >= 20 && (v.getInt(16) & 1) != 0;
    String print = utf16(v, buffer + printOff, printLen, where);
    String target = print.isEmpty() ? utf16(v, buffer + subOff, subLen, where) : print;
    return relative ? target.replace('\\', '/') : target;
  }

  private static String utf16(ByteBuffer v, int at, int len, String where) throws IOException {
    if (at + len > v.capacity() || len % 2 != 0) {
      throw new IOException(
          fmt("%s: reparse point name of %d bytes at +%d overruns it", where, len, at));
    }
    byte[] b = new byte[len];
    v.get(at, b);
    return new String(b, StandardCharsets.UTF_16LE);
  }

  // --- directories ---

  /** Receives index entries (file reference, name); returns false to stop. */
  private interface EntryVisitor {
    boolean visit(long reference, String name) throws IOException;
  }

  private void entries(MftRecord dir, EntryVisitor visitor) throws IOException {
    String where =
        fmt("ntfs: directory mft record %d at offset %s", dir.number(), hex(dir.offset()));
    List<Attribute> roots = attributes(dir, INDEX_ROOT, "$I30");
    if (roots.isEmpty() || !roots.get(0).resident() || roots.get(0).value().capacity() < 32) {
      throw new IOException(where + ": no resident $I30 index root");
    }
    ByteBuffer root = roots.get(0).value();
    long blockSize = Integer.toUnsignedLong(root.getInt(8));
    Deque<Long> todo = new ArrayDeque<>();
    if (!indexNode(root, 16, root.capacity(), where + ": index root", visitor, todo)) {
      return;
    }
    if (todo.isEmpty()) {
      return;
    }
    if (blockSize < 512 || blockSize > 65536 || Long.bitCount(blockSize) != 1) {
      throw new IOException(fmt("%s: index block size %d", where, blockSize));
    }
    List<Attribute> allocation = attributes(dir, INDEX_ALLOCATION, "$I30");
    if (allocation.isEmpty()) {
      throw new IOException(
          where + ": index root points at index blocks but there is no" + " $I30 index allocation");
    }
    Stream s = stream(allocation, where + ": index allocation");
    long unit = blockSize >= boot.clusterSize() ? boot.clusterSize() : 512;
    Set<Long> visited = new HashSet<>();
    while (!todo.isEmpty()) {
      long vcn = todo.poll();
      String block = fmt("%s: index block vcn %d", where, vcn);
      if (vcn < 0 || vcn > (s.size() - blockSize) / unit) {
        throw new IOException(
            fmt("%s is outside the index allocation (%d bytes)", block, s.size()));
      }
      if (!visited.add(vcn)) {
        throw new IOException(block + " is reached twice (a loop in the index)");
      }
      ByteBuffer b = ByteBuffer.allocate((int) blockSize).order(ByteOrder.LITTLE_ENDIAN);
      read(s, vcn * unit, b, block);
      b.clear();
      if (b.getInt(0) != INDX_MAGIC) {
        throw new IOException(
            fmt(
                "%s: magic %s (expected 0x58444e49 \"INDX\")",
                block, hex(Integer.toUnsignedLong(b.getInt(0)))));
      }
      MftRecord.fixup(b, block);
      if (!indexNode(b, 0x18, b.capacity(), block, visitor, todo)) {
        return;
      }
    }
  }

  /** Parses the index node whose header is at {@code header}; subnode VCNs go to {@code todo}. */
  private static boolean indexNode(
      ByteBuffer b, int header, int limit, String where, EntryVisitor visitor, Deque<Long> todo)
      throws IOException {
    long first = Integer.toUnsignedLong(b.getInt(header));
    long total = Integer.toUnsignedLong(b.getInt(header + 4));
    if (header + total > limit || first > total) {
      throw new IOException(
          fmt(
              "%s: index entries [%d, %d) do not fit %d bytes",
              where, first, total, limit - header));
    }
    int at = header + (int) first;
    int end = header + (int) total;
    while (at + 16 <= end) {
      long ref = b.getLong(at);
      int len = b.getShort(at + 8) & 0xffff;
      int keyLen = b.getShort(at + 10) & 0xffff;
      int flags = b.getShort(at + 12) & 0xffff;
      if (len < 16 || len % 8 != 0 || at + len > end || 16 + keyLen > len) {
        throw new IOException(
            fmt("%s: index entry at +%d has length %d and key length %d", where, at, len, keyLen));
      }
      if ((flags & 1) != 0) {
        if (len < 24) {
          throw new IOException(
              fmt("%s: index entry at +%d is too short for a subnode", where, at));
        }
        todo.add(b.getLong(at + len - 8));
      }
      if ((flags & 2) != 0) {
        break;
      }
      if (keyLen >= 66) {
        int nameLen = b.get(at + 16 + 64) & 0xff;
        int namespace = b.get(at + 16 + 65) & 0xff;
        if (66 + 2 * nameLen > keyLen) {
          throw new IOException(
              fmt(
                  "%s: index entry at +%d: name of %d characters overruns" + " its key",
                  where, at, nameLen));
        }
        if (namespace != 2) { // DOS 8.3 aliases repeat a long name
          byte[] name = new byte[2 * nameLen];
          b.get(at + 16 + 66, name);
          if (!visitor.visit(ref, new String(name, StandardCharsets.UTF_16LE))) {
            return false;
          }
        }
      }
      at += len;
    }
    return true;
  }
}
