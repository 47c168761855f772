package io.granule.engine.internal.repo.pack;

import java.util.List;

/** Packs as a storage writer without the password can rewrite them, for tests. */
public final class PackForgery {
  private PackForgery() {}

  /**
   * {@code file} (a whole pack) with its trailer replaced by {@code entries}, every checksum right:
   * what a storage writer without the password can do.
   */
  public static byte[] withTrailer(byte[] file, List<PackEntry> entries) {
    java.nio.ByteBuffer f = java.nio.ByteBuffer.wrap(file);
    long trailerOffset = f.getLong(file.length - PackFormat.FOOTER_SIZE);
    java.nio.ByteBuffer b =
        java.nio.ByteBuffer.allocate(
            (int) trailerOffset + entries.size() * PackFormat.ENTRY_SIZE + PackFormat.FOOTER_SIZE);
    b.put(file, 0, (int) trailerOffset);
    for (PackEntry e : entries) {
      e.id().write(b);
      b.putLong(e.offset()).putInt(e.storedLength()).putInt(e.rawLength());
      b.putInt(e.flags()).putInt(e.crc());
    }
    java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
    crc.update(b.array(), (int) trailerOffset, entries.size() * PackFormat.ENTRY_SIZE);
    b.putLong(trailerOffset).putInt(entries.size()).putInt((int) crc.getValue());
    crc.reset();
    crc.update(b.array(), 0, b.position());
    b.putInt((int) crc.getValue()).putInt(PackFormat.FOOTER_MAGIC);
    return b.array();
  }
}
