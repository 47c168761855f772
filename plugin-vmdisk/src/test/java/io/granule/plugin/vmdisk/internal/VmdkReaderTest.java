package io.granule.plugin.vmdisk.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.Extent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class VmdkReaderTest extends DiskImageFormatContractTest {
  @Override
  protected DiskImageFormat format() {
    return new VmdkFormat();
  }

  @Override
  protected Variant fuzzVariant() {
    return converted("streamOptimized", "vmdk", "f.vmdk", "-o", "subformat=streamOptimized");
  }

  @Override
  protected List<Variant> variants() {
    return List.of(
        converted("monolithicSparse", "vmdk", "ms.vmdk", "-o", "subformat=monolithicSparse"),
        converted(
            "monolithicSparse zeroed grains",
            "vmdk",
            "msz.vmdk",
            "-o",
            "subformat=monolithicSparse,zeroed_grain=on"),
        converted("streamOptimized", "vmdk", "so.vmdk", "-o", "subformat=streamOptimized"),
        converted("monolithicFlat", "vmdk", "mf.vmdk", "-o", "subformat=monolithicFlat"),
        converted("twoGbMaxExtentSparse", "vmdk", "s.vmdk", "-o", "subformat=twoGbMaxExtentSparse"),
        converted("twoGbMaxExtentFlat", "vmdk", "f.vmdk", "-o", "subformat=twoGbMaxExtentFlat"),
        new Variant("split sparse extents", "vmdk", (dir, raw) -> split(dir, raw, "SPARSE")),
        new Variant("split flat extents", "vmdk", (dir, raw) -> split(dir, raw, "FLAT")),
        new Variant("delta disk with parentFileNameHint", "vmdk", VmdkReaderTest::delta));
  }

  /**
   * A descriptor of several extents, as split images have: the fixture's first 8 MiB in one extent,
   * the rest in a second (each extent made by qemu-img, the descriptor written here in qemu's
   * layout). No ZERO extent: qemu skips those lines, so it cannot be the oracle for them.
   */
  private static Path split(Path dir, Path raw, String kind) throws IOException {
    byte[] all = Files.readAllBytes(raw);
    int first = 8 << 20;
    Path a = Files.write(dir.resolve("part-a.raw"), Arrays.copyOfRange(all, 0, first));
    Path b = Files.write(dir.resolve("part-b.raw"), Arrays.copyOfRange(all, first, all.length));
    String sub = kind.equals("SPARSE") ? "monolithicSparse" : "monolithicFlat";
    String[] names = new String[2];
    Path[] parts = {a, b};
    for (int i = 0; i < 2; i++) {
      Path out = dir.resolve("extent-" + i + ".vmdk");
      Qemu.img(
          "convert",
          "-f",
          "raw",
          "-O",
          "vmdk",
          "-o",
          "subformat=" + sub,
          parts[i].toString(),
          out.toString());
      // A flat conversion writes a descriptor plus extent-N-flat.vmdk: use the flat file.
      names[i] =
          kind.equals("SPARSE") ? out.getFileName().toString() : "extent-" + i + "-flat.vmdk";
      Files.delete(parts[i]);
    }
    String suffix = kind.equals("FLAT") ? " 0" : "";
    String descriptor =
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
            + "createType=\"twoGbMaxExtent"
            + (kind.equals("FLAT") ? "Flat" : "Sparse")
            + "\"\n\n"
            + "# Extent description\n"
            + "RW "
            + first / 512
            + " "
            + kind
            + " \""
            + names[0]
            + "\""
            + suffix
            + "\n"
            + "RW "
            + (all.length - first) / 512
            + " "
            + kind
            + " \""
            + names[1]
            + "\""
            + suffix
            + "\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n";
    return Files.writeString(dir.resolve("split.vmdk"), descriptor);
  }

  private static Path delta(Path dir, Path raw) {
    Path base = dir.resolve("base.vmdk");
    Qemu.img("convert", "-f", "raw", "-O", "vmdk", raw.toString(), base.toString());
    Path top = dir.resolve("top.vmdk");
    Qemu.img("create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", top.toString());
    Qemu.io("-c", "write -P 0xab 1M 64k", "-c", "write -P 0xcd 5M 100k", top.toString());
    return top;
  }

  private Path write(String name, String content) throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("bad-vmdk"));
    return Files.writeString(dir.resolve(name), content, StandardCharsets.UTF_8);
  }

  /** A descriptor names its extents: the image's files are the descriptor, then each extent. */
  @Test
  void aDescriptorsImageNamesItsExtentFiles() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("files-of-split"));
    Path raw = Files.write(dir.resolve("in.raw"), new byte[12 << 20]);
    Path split = split(dir, raw, "FLAT");
    try (DiskImage img = format().open(split)) {
      assertThat(img.files())
          .containsExactly(
              split, dir.resolve("extent-0-flat.vmdk"), dir.resolve("extent-1-flat.vmdk"));
    }
  }

  @Test
  void zeroExtentReadsAsZeros() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("zero-extent"));
    byte[] flat = new byte[512];
    flat[0] = 9;
    Files.write(dir.resolve("d-flat.vmdk"), flat);
    Path p =
        Files.writeString(
            dir.resolve("d.vmdk"),
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
                + "createType=\"monolithicFlat\"\nRW 1 ZERO\nRDONLY 1 FLAT \"d-flat.vmdk\" 0\n");
    try (DiskImage d = format().open(p)) {
      assertThat(d.size()).isEqualTo(1024);
      ByteBuffer b = ByteBuffer.allocate(1024);
      d.read(0, b);
      byte[] expected = new byte[1024];
      expected[512] = 9;
      assertThat(b.array()).isEqualTo(expected);
      assertThat(d.allocation(0, 1024)).containsExactly(new Extent(512, 512));
    }
  }

  @Test
  void missingExtentFileNamesIt() throws IOException {
    Path p =
        write(
            "missing.vmdk",
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
                + "createType=\"monolithicFlat\"\nRW 2048 FLAT \"gone-flat.vmdk\" 0\n");
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "unable to open disk image '"
                + p
                + "': descriptor line 6: extent file"
                + " 'gone-flat.vmdk' cannot be opened");
  }

  @Test
  void esxExtentsAreRefused() throws IOException {
    Path p =
        write(
            "esx.vmdk",
            "# Disk DescriptorFile\nversion=1\ncreateType=\"vmfsSparse\"\n"
                + "RW 2048 VMFSSPARSE \"x-delta.vmdk\"\n");
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessage(
            "unable to open disk image '%s': descriptor line 4: VMFSSPARSE extents are not"
                + " supported (supported: FLAT, SPARSE, ZERO)",
            p);
  }

  @Test
  void absurdExtentSizeIsRefused() throws IOException {
    Path p =
        write(
            "absurd.vmdk",
            "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n"
                + "RW 99999999999999999 ZERO\n");
    assertThatThrownBy(() -> format().open(p).close())
        .isInstanceOf(IOException.class)
        .hasMessage(
            "unable to open disk image '%s': descriptor line 4: extents add up to more than the"
                + " limit of 64 TiB",
            p);
  }
}
