package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
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

  /**
   * qemu-img neither makes nor reads differencing VHDs, so this one is made here from two dynamic
   * VHDs qemu made: the child's type becomes differencing, it names the parent in a W2ru locator
   * and by unique id, and some bits of its sector bitmap are cleared. Expected bytes come from
   * qemu's reading of each file: child sectors whose bit is set, parent sectors otherwise.
   */
  @Test
  void differencingReadsClearedSectorsFromTheParent() throws Exception {
    Path dir = Files.createDirectories(tmp.resolve("differencing"));
    Path parent = dir.resolve("parent.vhd");
    Qemu.img(
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=dynamic,force_size=on",
        raw(2).toString(),
        parent.toString());
    long size = Files.size(raw(2));
    Path child = dir.resolve("child.vhd");
    Qemu.img(
        "create",
        "-f",
        "vpc",
        "-o",
        "subformat=dynamic,force_size=on",
        child.toString(),
        Long.toString(size));
    Qemu.io(
        "-c",
        "write -P 0xab 0 64k",
        "-c",
        "write -P 0xcd 1M 4k",
        "-c",
        "write -P 0xef " + (size - 4096) + " 4k",
        child.toString());
    byte[] parentBytes = Files.readAllBytes(Qemu.toRaw(parent, "vpc", dir.resolve("p.raw")));
    byte[] childBytes = Files.readAllBytes(Qemu.toRaw(child, "vpc", dir.resolve("c.raw")));
    byte[] parentFooter = Arrays.copyOfRange(Files.readAllBytes(parent), 0, 512);

    byte[] c = Files.readAllBytes(child);
    ByteBuffer b = ByteBuffer.wrap(c);
    long batOffset = b.getLong(512 + 16);
    long block0 = (b.getInt((int) batOffset) & 0xffffffffL) * 512;
    long block1 = b.getInt((int) batOffset + 4) & 0xffffffffL;
    assertThat(block1).as("block 1 allocated").isNotEqualTo(0xffffffffL);
    // Sectors 10 to 19 of block 0 come from the parent.
    for (int sector = 10; sector < 20; sector++) {
      c[(int) block0 + sector / 8] &= (byte) ~(0x80 >>> (sector % 8));
    }
    // Append a W2ru locator sector before the footer.
    byte[] footer = Arrays.copyOfRange(c, c.length - 512, c.length);
    byte[] locator = Arrays.copyOf("parent.vhd".getBytes(StandardCharsets.UTF_16LE), 512);
    long locatorOffset = c.length - 512;
    byte[] out = Arrays.copyOf(c, c.length + 512);
    System.arraycopy(locator, 0, out, (int) locatorOffset, 512);
    ByteBuffer o = ByteBuffer.wrap(out);
    ByteBuffer f = ByteBuffer.wrap(footer);
    f.putInt(60, 4);
    sum(f, 64);
    o.put(0, footer);
    o.put(out.length - 512, footer);
    int dyn = 512;
    o.put(dyn + 40, parentFooter, 68, 16);
    byte[] name = "parent.vhd".getBytes(StandardCharsets.UTF_16BE);
    o.put(dyn + 64, name);
    o.putInt(dyn + 576, 0x57327275);
    o.putInt(dyn + 576 + 4, 1);
    o.putInt(dyn + 576 + 8, 20);
    o.putLong(dyn + 576 + 16, locatorOffset);
    sum(o.slice(dyn, 1024), 36);
    Files.write(child, out);

    byte[] expected = childBytes.clone();
    System.arraycopy(parentBytes, 10 * 512, expected, 10 * 512, 10 * 512);
    try (DiskImage d = format().open(child)) {
      ByteBuffer all = ByteBuffer.allocate((int) d.size());
      d.read(0, all);
      assertSameBytes(all.array(), expected, 0, "differencing vhd");
      List<Extent> extents = d.allocation(0, d.size());
      for (int i = 0; i < expected.length; i++) {
        if (expected[i] != 0) {
          final int at = i;
          assertThat(extents)
              .as("byte %d allocated", i)
              .anyMatch(e -> e.offset() <= at && at < e.end());
        }
      }
    }
    Files.delete(parent);
    assertThatThrownBy(() -> format().open(child).close())
        .isInstanceOf(IOException.class)
        .hasMessage(
            "unable to open disk image '%s': parent of differencing vhd not found (tried:"
                + " %s, %s)",
            child, parent, parent);
  }

  private static void sum(ByteBuffer b, int field) {
    b.putInt(field, 0);
    int sum = 0;
    for (int i = 0; i < b.limit(); i++) {
      sum += b.get(i) & 0xff;
    }
    b.putInt(field, ~sum);
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
            "unable to open disk image '"
                + p
                + "': checksum mismatch in the vhd footer at offset"
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
            "unable to open disk image '"
                + p
                + "': block allocation table at offset 0x1000000000"
                + " (length 0x10) lies outside the file");
  }
}
