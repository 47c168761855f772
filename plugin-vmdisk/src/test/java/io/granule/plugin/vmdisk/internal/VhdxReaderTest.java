package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

class VhdxReaderTest extends DiskImageFormatContractTest {
  @Override
  protected DiskImageFormat format() {
    return new VhdxFormat();
  }

  @Override
  protected Variant fuzzVariant() {
    return converted("dynamic 1M blocks", "vhdx", "f.vhdx", "-o", "block_size=1M");
  }

  @Override
  protected List<Variant> variants() {
    return List.of(
        converted("dynamic", "vhdx", "dyn.vhdx", "-o", "subformat=dynamic"),
        converted("dynamic 1M blocks", "vhdx", "dyn1m.vhdx", "-o", "block_size=1M"),
        converted("dynamic 8M blocks", "vhdx", "dyn8m.vhdx", "-o", "block_size=8M"),
        converted("fixed", "vhdx", "fixed.vhdx", "-o", "subformat=fixed"),
        converted(
            "fixed 2M blocks", "vhdx", "fixed2m.vhdx", "-o", "subformat=fixed,block_size=2M"));
  }

  private Path image(String name) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("bad-vhdx"));
    Path p = dir.resolve(name);
    Files.deleteIfExists(p);
    Qemu.img("create", "-f", "vhdx", p.toString(), "8M");
    return p;
  }

  /** Rewrites both headers with a log GUID set and a valid checksum. */
  @Test
  void nonEmptyLogIsRefused() throws IOException {
    Path p = image("log.vhdx");
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      for (long offset : new long[] {64 << 10, 128 << 10}) {
        ByteBuffer h = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        ch.read(h, offset);
        h.putLong(48, 0x1234_5678_9abc_def0L);
        h.putInt(4, 0);
        CRC32C crc = new CRC32C();
        crc.update(h.array());
        h.putInt(4, (int) crc.getValue());
        ch.write(h.clear(), offset);
      }
    }
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessage(
            "unable to open disk image '%s': vhdx log not empty: open it once with qemu-img check"
                + " -r all or Hyper-V first",
            p);
  }

  @Test
  void corruptHeadersAreRefused() throws IOException {
    Path p = image("headers.vhdx");
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(new byte[] {1}), (64 << 10) + 100);
      ch.write(ByteBuffer.wrap(new byte[] {1}), (128 << 10) + 100);
    }
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessage(
            "unable to open disk image '%s': no valid vhdx header: checksum mismatch at 0x10000;"
                + " checksum mismatch at 0x20000",
            p);
  }
}
