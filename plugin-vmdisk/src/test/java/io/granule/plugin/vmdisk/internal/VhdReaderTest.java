package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.DiskImageFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;

class VhdReaderTest extends DiskImageFormatContractTest {
  @Override
  protected DiskImageFormat format() {
    return new VhdFormat();
  }

  @Override
  protected Variant fuzzVariant() {
    return converted("dynamic", "vpc", "f.vhd", "-o", "subformat=dynamic,force_size=on");
  }

  /** A dynamic VHD has its footer at the start and the end. */
  @Override
  protected byte[] breakMagic(byte[] image) {
    super.breakMagic(image);
    image[image.length - 512] = 'Z';
    return image;
  }

  @Override
  protected boolean probes(Variant v) {
    return !v.name().startsWith("fixed");
  }

  @Override
  protected List<Variant> variants() {
    return List.of(
        converted("fixed", "vpc", "fixed.vhd", "-o", "subformat=fixed,force_size=on"),
        converted("dynamic", "vpc", "dyn.vhd", "-o", "subformat=dynamic,force_size=on"),
        converted("dynamic, CHS geometry size", "vpc", "chs.vhd", "-o", "subformat=dynamic"));
  }

  private Path dynamic(String name) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("bad-vhd"));
    Path p = dir.resolve(name);
    Files.deleteIfExists(p);
    Qemu.img("create", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", p.toString(), "8M");
    return p;
  }

  @Test
  void footerChecksumMismatchIsAnError() throws IOException {
    Path p = dynamic("checksum.vhd");
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
      ch.write(ByteBuffer.wrap(new byte[] {0x7f}), 40);
    }
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "unable to open disk image '" + p + "': checksum mismatch in the vhd footer at offset"
                + " 0x0: actual=");
  }

  @Test
  void batOutsideTheFileIsAnError() throws IOException {
    Path p = dynamic("bat.vhd");
    // Table offset in the dynamic header (at 512), then fix the header checksum.
    ByteBuffer dyn = ByteBuffer.allocate(1024);
    try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      ch.read(dyn, 512);
      dyn.putLong(16, 0x10_0000_0000L);
      dyn.putInt(36, 0);
      int sum = 0;
      for (int i = 0; i < 1024; i++) {
        sum += dyn.get(i) & 0xff;
      }
      dyn.putInt(36, ~sum);
      ch.write(dyn.flip(), 512);
    }
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "unable to open disk image '" + p + "': block allocation table at offset 0x1000000000"
                + " (length 0x10) lies outside the file");
  }
}
