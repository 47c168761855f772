package io.granule.engine.internal.repo.pack;

/**
 * Constants of the pack file layout (see docs/formats.md). All integers big-endian.
 *
 * <pre>
 * header   8 bytes   magic "GPAK" (0x4750414b), u16 version = 1, u16 reserved = 0
 * records  …         stored bytes of each chunk, back to back, starting at offset 8
 * trailer  n × 56    per chunk: id[32], u64 offset, u32 storedLength, u32 rawLength,
 *                    u32 flags, u32 crc32c(stored bytes)
 * footer   24 bytes  u64 trailerOffset, u32 n, u32 crc32c(trailer),
 *                    u32 crc32c(every byte before this field), magic "KAPG" (0x4b415047)
 * </pre>
 *
 * Never change these values: packs written today must stay readable.
 */
public final class PackFormat {
  public static final int MAGIC = 0x4750414b;
  public static final int FOOTER_MAGIC = 0x4b415047;
  public static final int VERSION = 1;
  public static final int HEADER_SIZE = 8;
  public static final int ENTRY_SIZE = 56;
  public static final int FOOTER_SIZE = 24;

  private PackFormat() {}
}
