package io.granule.plugin.vmdisk.internal.fs.ntfs;

import static io.granule.plugin.vmdisk.internal.fs.Names.fmt;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The fields of an NTFS boot sector this reader uses, checked for consistency.
 *
 * @param clusterSize bytes per cluster
 * @param clusters clusters in the volume
 * @param mftCluster the first cluster of the MFT
 * @param recordSize bytes per MFT record
 * @param indexBlockSize bytes per directory index block
 */
record NtfsBoot(
    int clusterSize, long clusters, long mftCluster, int recordSize, int indexBlockSize) {

  static boolean hasSignature(ByteBuffer boot) {
    byte[] oem = new byte[8];
    boot.get(3, oem);
    return new String(oem, StandardCharsets.US_ASCII).equals("NTFS    ");
  }

  /** Parses the boot sector: the first 512 bytes of the volume, little-endian. */
  static NtfsBoot parse(ByteBuffer b, long volumeSize) throws IOException {
    String where = "ntfs: boot sector at offset 0x0";
    if (!hasSignature(b)) {
      throw new IOException(
          where
              + ": no \"NTFS    \" signature: not an ntfs filesystem, or its"
              + " boot sector is damaged (a backup is in the volume's last sector)");
    }
    int sector = b.getShort(0x0b) & 0xffff;
    int perCluster = b.get(0x0d) & 0xff;
    int clusterSize = perCluster <= 0x80 ? sector * perCluster : 1 << (256 - perCluster);
    long sectors = b.getLong(0x28);
    long mft = b.getLong(0x30);
    int recordSize = size(b.get(0x40), clusterSize);
    int indexSize = size(b.get(0x44), clusterSize);
    if (sector < 256
        || sector > 4096
        || Integer.bitCount(sector) != 1
        || clusterSize < sector
        || clusterSize > 1 << 21
        || Integer.bitCount(clusterSize) != 1
        || recordSize < 512
        || recordSize > 65536
        || indexSize < 512
        || indexSize > 65536
        || sectors <= 0) {
      throw new IOException(
          fmt(
              "%s: inconsistent geometry: %d-byte sectors, %d-byte clusters,"
                  + " %d-byte mft records, %d-byte index blocks, %d sectors",
              where, sector, clusterSize, recordSize, indexSize, sectors));
    }
    long clusters = sectors / (clusterSize / sector);
    if (sectors > volumeSize / sector) {
      throw new IOException(
          fmt(
              "%s: the filesystem has %d sectors of %d bytes but the volume"
                  + " only %d bytes: the volume is truncated or is not this filesystem's",
              where, sectors, sector, volumeSize));
    }
    if (mft <= 0 || mft >= clusters) {
      throw new IOException(
          fmt("%s: mft at cluster %d is outside the volume (%d clusters)", where, mft, clusters));
    }
    return new NtfsBoot(clusterSize, clusters, mft, recordSize, indexSize);
  }

  /** A size field: clusters when positive, 2^-n bytes when negative. */
  private static int size(byte raw, int clusterSize) {
    if (raw > 0) {
      long bytes = (long) raw * clusterSize;
      return bytes > Integer.MAX_VALUE ? -1 : (int) bytes;
    }
    int shift = -raw;
    return shift >= 31 ? -1 : 1 << shift;
  }
}
