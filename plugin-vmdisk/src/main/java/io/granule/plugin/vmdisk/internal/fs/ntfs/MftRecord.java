package io.granule.plugin.vmdisk.internal.fs.ntfs;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;
import static io.granule.plugin.vmdisk.internal.fs.Names.hex;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One MFT record ("FILE"), its update sequence fixups applied, and its attributes.
 *
 * @param number the record number
 * @param offset the record's byte offset in the volume, for error messages
 * @param sequence the record's sequence number (directory references carry it)
 * @param flags 0x1 in use, 0x2 directory
 * @param linkCount hard links, as recorded
 * @param baseRecord the base record of an extension record, 0 for a base record
 * @param attributes the attributes in on-disk order
 */
record MftRecord(
    long number,
    long offset,
    int sequence,
    int flags,
    int linkCount,
    long baseRecord,
    List<Attribute> attributes) {
  static final int FLAG_IN_USE = 0x1;
  static final int FLAG_DIRECTORY = 0x2;
  static final int END = 0xffffffff;
  private static final int MAGIC = 0x454c4946; // "FILE"

  /** One attribute: resident with a value, or non-resident with runs. */
  record Attribute(
      int type,
      String name,
      int id,
      int flags,
      ByteBuffer value,
      long startVcn,
      long dataSize,
      long initializedSize,
      List<Run> runs) {
    boolean resident() {
      return value != null;
    }
  }

  /** A run of clusters: VCNs {@code [vcn, vcn + length)} at LCN {@code lcn}, or sparse (-1). */
  record Run(long vcn, long lcn, long length) {}

  /**
   * Parses a record from its raw bytes (modified: the fixups are applied in place).
   *
   * @param clusters the volume's cluster count, to check runs against
   */
  static MftRecord parse(long number, long offset, ByteBuffer b, long clusters) throws IOException {
    String where = fmt("ntfs: mft record %d at offset %s", number, hex(offset));
    b.order(ByteOrder.LITTLE_ENDIAN);
    if (b.getInt(0) != MAGIC) {
      throw new IOException(
          fmt(
              "%s: magic %s (expected 0x454c4946 \"FILE\")",
              where, hex(Integer.toUnsignedLong(b.getInt(0)))));
    }
    fixup(b, where);
    int attrs = b.getShort(20) & 0xffff;
    long used = Integer.toUnsignedLong(b.getInt(24));
    int end = (int) Math.min(used, b.capacity());
    List<Attribute> out = new ArrayList<>();
    int at = attrs;
    while (at + 8 <= end) {
      int type = b.getInt(at);
      if (type == END) {
        break;
      }
      long len = Integer.toUnsignedLong(b.getInt(at + 4));
      if (len < 24 || len % 8 != 0 || at + len > end) {
        throw new IOException(
            fmt(
                "%s: attribute %s at +%d has length %d (room for %d)",
                where, hex(Integer.toUnsignedLong(type)), at, len, end - at));
      }
      out.add(
          attribute(b.slice(at, (int) len).order(ByteOrder.LITTLE_ENDIAN), where, at, clusters));
      at += (int) len;
    }
    return new MftRecord(
        number,
        offset,
        b.getShort(16) & 0xffff,
        b.getShort(22) & 0xffff,
        b.getShort(18) & 0xffff,
        b.getLong(32) & 0xffffffffffffL,
        out);
  }

  /** Checks and undoes the update sequence array: the last two bytes of every 512. */
  static void fixup(ByteBuffer b, String where) throws IOException {
    int usa = b.getShort(4) & 0xffff;
    int count = b.getShort(6) & 0xffff;
    if (count < 2
        || (count - 1) * 512 != b.capacity()
        || usa + 2 * count > b.capacity()
        || usa < 8) {
      throw new IOException(
          fmt(
              "%s: update sequence array of %d entries at +%d does not fit" + " %d bytes",
              where, count, usa, b.capacity()));
    }
    short usn = b.getShort(usa);
    for (int i = 1; i < count; i++) {
      int at = i * 512 - 2;
      if (b.getShort(at) != usn) {
        throw new IOException(
            fmt("%s: sector %d fails its update sequence check (torn write)", where, i - 1));
      }
      b.putShort(at, b.getShort(usa + 2 * i));
    }
  }

  private static Attribute attribute(ByteBuffer a, String where, int at, long clusters)
      throws IOException {
    int type = a.getInt(0);
    int nameLen = a.get(9) & 0xff;
    int nameOff = a.getShort(10) & 0xffff;
    if (nameOff + 2 * nameLen > a.capacity()) {
      throw new IOException(fmt("%s: attribute name at +%d overruns the attribute", where, at));
    }
    byte[] name = new byte[2 * nameLen];
    a.get(nameOff, name);
    String n = new String(name, StandardCharsets.UTF_16LE);
    int flags = a.getShort(12) & 0xffff;
    int id = a.getShort(14) & 0xffff;
    if (a.get(8) == 0) {
      long len = Integer.toUnsignedLong(a.getInt(16));
      int off = a.getShort(20) & 0xffff;
      if (off + len > a.capacity()) {
        throw new IOException(fmt("%s: resident value of attribute at +%d overruns it", where, at));
      }
      return new Attribute(
          type,
          n,
          id,
          flags,
          a.slice(off, (int) len).order(ByteOrder.LITTLE_ENDIAN),
          0,
          len,
          len,
          List.of());
    }
    if (a.capacity() < 64) {
      throw new IOException(fmt("%s: non-resident attribute at +%d is too short", where, at));
    }
    long startVcn = a.getLong(16);
    int runsOff = a.getShort(32) & 0xffff;
    long dataSize = a.getLong(48);
    long initSize = a.getLong(56);
    if (startVcn < 0 || dataSize < 0 || initSize < 0 || runsOff >= a.capacity()) {
      throw new IOException(
          fmt(
              "%s: non-resident attribute at +%d: start vcn %d, size %d," + " runs at +%d",
              where, at, startVcn, dataSize, runsOff));
    }
    return new Attribute(
        type,
        n,
        id,
        flags,
        null,
        startVcn,
        dataSize,
        initSize,
        runs(a, runsOff, startVcn, clusters, where, at));
  }

  private static List<Run> runs(
      ByteBuffer a, int at, long vcn, long clusters, String where, int attrAt) throws IOException {
    List<Run> out = new ArrayList<>();
    long lcn = 0;
    while (at < a.capacity()) {
      int header = a.get(at) & 0xff;
      if (header == 0) {
        break;
      }
      int lenSize = header & 0xf;
      int offSize = header >>> 4;
      if (lenSize == 0 || lenSize > 8 || offSize > 8 || at + 1 + lenSize + offSize > a.capacity()) {
        throw new IOException(
            fmt("%s: attribute at +%d: run header %s at +%d", where, attrAt, hex(header), at));
      }
      long length = le(a, at + 1, lenSize, false);
      if (length <= 0 || length > clusters) {
        throw new IOException(
            fmt("%s: attribute at +%d: run of %d clusters", where, attrAt, length));
      }
      if (offSize == 0) {
        out.add(new Run(vcn, -1, length));
      } else {
        lcn += le(a, at + 1 + lenSize, offSize, true);
        if (lcn < 0 || lcn + length > clusters) {
          throw new IOException(
              fmt(
                  "%s: attribute at +%d: run of %d clusters at cluster %d is"
                      + " outside the volume (%d clusters)",
                  where, attrAt, length, lcn, clusters));
        }
        out.add(new Run(vcn, lcn, length));
      }
      vcn += length;
      at += 1 + lenSize + offSize;
    }
    return out;
  }

  private static long le(ByteBuffer b, int at, int size, boolean signed) {
    long v = 0;
    for (int i = size - 1; i >= 0; i--) {
      v = (v << 8) | (b.get(at + i) & 0xff);
    }
    if (signed && size < 8 && (b.get(at + size - 1) & 0x80) != 0) {
      v |= -1L << (8 * size);
    }
    return v;
  }
}
