package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.plugin.vmdisk.internal.fs.Tools;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An image file (qcow2, VMDK, VHDX) that is not in the page cache when it is opened is read past it
 * for a backup's large aligned reads into aligned direct buffers: the bytes are the disk's
 * (qemu-img made the image from a raw file), the image says it reads past the cache (a backup then
 * keeps more reads in flight), and {@code fincore} finds the file's data still uncached; the same
 * image opened while cached is read through the cache. Needs cachestat(2) (Linux 6.5), the engine's
 * native library, qemu-img, fincore and a temporary directory on disk; under {@code CI=true} their
 * absence is a failure.
 */
class ColdImageReadTest {
  private static final int MIB = Fixtures.MIB;

  @TempDir Path tmp;

  private static long cached(Path f) throws Exception {
    String out =
        Tools.run(null, "fincore", "--bytes", "--noheadings", "--output", "RES", f.toString());
    return Long.parseLong(out.trim());
  }

  private static void dropFromCache(Path f) throws Exception {
    Tools.run(null, "sync", f.toString());
    Tools.run(null, "dd", "if=" + f, "iflag=nocache", "count=0", "status=none");
  }

  private static ByteBuffer aligned(int length) {
    return ByteBuffer.allocateDirect(length + 4096).alignedSlice(4096).limit(length);
  }

  @Test
  void aColdImageIsReadPastThePageCacheAndACachedOneThroughIt() throws Exception {
    Qemu.assumeAvailable();
    Tools.require("fincore", "util-linux");
    String type = Files.getFileStore(tmp).type();
    Tools.assume(!type.equals("tmpfs") && !type.equals("ramfs"), "a temporary directory on disk");
    Path raw = Fixtures.raw(tmp.resolve("disk.raw"), 24);
    byte[] want = Files.readAllBytes(raw);
    for (DiskImageFormat format : List.of(new Qcow2Format(), new VmdkFormat(), new VhdxFormat())) {
      String name = format.name();
      Path image = tmp.resolve("disk." + name);
      Qemu.img("convert", "-f", "raw", "-O", name, raw.toString(), image.toString());
      dropFromCache(image);
      Tools.assume(cached(image) < MIB, "the image could be dropped from the page cache");
      try (DiskImage img = format.open(image)) {
        Tools.assume(img.readsPastPageCache(), "cachestat(2), the native library and O_DIRECT");
        // a backup's reads: 1 MiB-aligned chunks into aligned direct buffers
        byte[] got = new byte[want.length];
        ByteBuffer b = aligned(MIB);
        for (int off = 0; off < want.length; off += MIB) {
          int n = Math.min(MIB, want.length - off);
          img.read(off, b.clear().limit(n));
          b.flip().get(got, off, n);
        }
        assertThat(Arrays.equals(got, want)).as("%s read back", name).isTrue();
      }
      assertThat(cached(image)).as("%s bytes cached after reading it", name).isLessThan(2L * MIB);

      Files.readAllBytes(image);
      try (DiskImage img = format.open(image)) {
        assertThat(img.readsPastPageCache()).as("%s, cached", name).isFalse();
      }
    }
  }
}
