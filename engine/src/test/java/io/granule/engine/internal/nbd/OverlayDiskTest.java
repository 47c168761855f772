package io.granule.engine.internal.nbd;

import static java.nio.file.LinkOption.NOFOLLOW_LINKS;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.spi.Extent;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OverlayDiskTest {
  @TempDir Path tmp;

  private static byte[] read(OverlayDisk o, long offset, int length) throws IOException {
    ByteBuffer b = ByteBuffer.allocate(length);
    o.read(offset, b);
    assertThat(b.hasRemaining()).isFalse();
    return b.array();
  }

  @Test
  void randomWritesAndZeroesReadBackLikeAPlainArrayAndNeverTouchTheBase() throws IOException {
    long seed = new Random().nextLong();
    Random r = new Random(seed);
    int size = 200_000 + r.nextInt(4096);
    byte[] base = new byte[size];
    for (int i = 0; i < size; i += 1 + r.nextInt(64)) {
      base[i] = (byte) r.nextInt();
    }
    byte[] before = base.clone();
    byte[] expected = base.clone();
    MemoryDisk disk = new MemoryDisk(base, 4096);
    try (OverlayDisk o = OverlayDisk.temporary(disk, tmp)) {
      for (int op = 0; op < 400; op++) {
        int off = r.nextInt(size);
        int len = r.nextInt(Math.min(size - off, 20_000) + 1);
        if (r.nextBoolean()) {
          byte[] data = new byte[len];
          r.nextBytes(data);
          o.write(off, ByteBuffer.wrap(data));
          System.arraycopy(data, 0, expected, off, len);
        } else {
          o.writeZeroes(off, len);
          Arrays.fill(expected, off, off + len, (byte) 0);
        }
        int roff = r.nextInt(size);
        int rlen = r.nextInt(Math.min(size - roff, 30_000) + 1);
        assertThat(read(o, roff, rlen))
            .as("seed %d op %d", seed, op)
            .isEqualTo(Arrays.copyOfRange(expected, roff, roff + rlen));
      }
      assertThat(read(o, 0, size)).as("seed %d", seed).isEqualTo(expected);
      // Every byte outside the reported allocation reads as zero.
      byte[] fromAllocation = new byte[size];
      for (Extent e : o.allocation(0, size)) {
        System.arraycopy(
            expected, (int) e.offset(), fromAllocation, (int) e.offset(), (int) e.length());
      }
      assertThat(fromAllocation).as("seed %d", seed).isEqualTo(expected);
    }
    assertThat(base).isEqualTo(before);
    try (var files = Files.list(tmp)) {
      assertThat(files).as("the temporary overlay is deleted on close").isEmpty();
    }
  }

  @Test
  void aKeptOverlayResumesWithTheSameIdentityAndRefusesAnother() throws IOException {
    MemoryDisk disk = new MemoryDisk(new byte[10_000], 4096);
    try (OverlayDisk o = OverlayDisk.open(disk, tmp, "sda", "snapshot 1234 disk sda")) {
      o.write(5000, ByteBuffer.wrap(new byte[] {1, 2, 3}));
      o.writeZeroes(0, 4096);
    }
    try (OverlayDisk o = OverlayDisk.open(disk, tmp, "sda", "snapshot 1234 disk sda")) {
      assertThat(read(o, 4999, 5)).containsExactly(0, 1, 2, 3, 0);
      assertThat(o.allocation(0, 10_000)).containsExactly(new Extent(4096, 4096));
    }
    assertThatThrownBy(() -> OverlayDisk.open(disk, tmp, "sda", "snapshot 9999 disk sda"))
        .isInstanceOf(IOException.class)
        .hasMessage(
            "overlay '"
                + tmp.resolve("sda.overlay-map")
                + "' belongs to snapshot 1234 disk sda (size 10000), not to snapshot 9999 disk sda"
                + " (size 10000): choose another --overlay directory or delete it");
    byte[] map = Files.readAllBytes(tmp.resolve("sda.overlay-map"));
    map[20] ^= 1;
    Files.write(tmp.resolve("sda.overlay-map"), map);
    assertThatThrownBy(() -> OverlayDisk.open(disk, tmp, "sda", "snapshot 1234 disk sda"))
        .isInstanceOf(IOException.class)
        .hasMessageStartingWith(
            "overlay map '"
                + tmp.resolve("sda.overlay-map")
                + "' is damaged: checksum mismatch: actual=")
        .hasMessageEndingWith("; delete it and its .overlay file");
  }

  @Test
  void rangesOutsideTheDiskAreRefused() throws IOException {
    try (OverlayDisk o = OverlayDisk.temporary(new MemoryDisk(new byte[8192], 4096), tmp)) {
      assertThatThrownBy(() -> o.write(8190, ByteBuffer.allocate(3)))
          .isInstanceOf(EOFException.class);
      assertThatThrownBy(() -> o.writeZeroes(-1, 3)).isInstanceOf(EOFException.class);
      assertThatThrownBy(() -> o.read(Long.MAX_VALUE, ByteBuffer.allocate(3)))
          .isInstanceOf(EOFException.class);
      assertThat(o.allocation(0, 8192)).isEqualTo(List.of());
    }
  }

  /**
   * A kept overlay's directory must be this user's (or root's) alone: root's --overlay /var/tmp/ov,
   * made first by another user with a link NAME.overlay-map.tmp to a file of root's, had that file
   * truncated and overwritten with the map. Its files are made 0600, and a link in their place is
   * never followed: a link at the map's temporary name is removed, and the map made anew.
   */
  @Test
  void aKeptOverlayNeedsAPrivateDirectoryAndFollowsNoLink() throws Exception {
    MemoryDisk disk = new MemoryDisk(new byte[65536], 4096);
    Path open = Files.createDirectory(tmp.resolve("open"));
    Files.setAttribute(open, "unix:mode", 01777); // sticky, as /var/tmp: not for the last one
    assertThatThrownBy(() -> OverlayDisk.open(disk, open, "vm", "id"))
        .isInstanceOf(java.nio.file.AccessDeniedException.class)
        .hasMessageContaining("refusing the overlay directory")
        .hasMessageContaining("can be written by every user");

    Path made = tmp.resolve("ov");
    Path victim = Files.writeString(tmp.resolve("victim"), "secret");
    OverlayDisk o = OverlayDisk.open(disk, made, "vm", "id");
    o.write(0, ByteBuffer.wrap(new byte[] {1, 2, 3}));
    Path link = Files.createSymbolicLink(made.resolve("vm.overlay-map.tmp"), victim);
    o.close();
    assertThat(Files.readString(victim)).isEqualTo("secret");
    assertThat(Files.exists(link, java.nio.file.LinkOption.NOFOLLOW_LINKS)).isFalse();
    assertThat(Files.isRegularFile(made.resolve("vm.overlay-map"), NOFOLLOW_LINKS)).isTrue();
    assertThat(Files.getPosixFilePermissions(made))
        .isEqualTo(PosixFilePermissions.fromString("rwx------"));
    assertThat(Files.getPosixFilePermissions(made.resolve("vm.overlay")))
        .isEqualTo(PosixFilePermissions.fromString("rw-------"));
  }

  /**
   * The overlay directory is resolved and checked once and held: a name swapped for a link
   * afterwards (audit10 F3: another user's link in /var/tmp, flipped between a directory of root's
   * and his own) changes nothing. The old code looked the name up again at every flush and at
   * close, so the map went wherever the name led by then.
   */
  @Test
  void aKeptOverlayStaysInTheDirectoryCheckedWhenItsNameIsSwappedForALink() throws Exception {
    MemoryDisk disk = new MemoryDisk(new byte[65536], 4096);
    Path parent = Files.createDirectory(tmp.resolve("p"));
    Path named = parent.resolve("ov");
    Path kept = parent.resolve("kept");
    Path elsewhere = Files.createDirectory(tmp.resolve("elsewhere"));
    Files.setAttribute(elsewhere, "unix:mode", 0777); // another user's, say
    try (OverlayDisk o = OverlayDisk.open(disk, named, "vm", "id")) {
      o.write(0, ByteBuffer.wrap(new byte[] {1, 2, 3}));
      o.flush();
      Files.move(named, kept);
      Files.createSymbolicLink(named, elsewhere);
      o.write(8192, ByteBuffer.wrap(new byte[] {4, 5, 6}));
      o.flush();
    }
    try (var files = Files.list(elsewhere)) {
      assertThat(files).as("nothing goes where the name leads now").isEmpty();
    }
    try (OverlayDisk o = OverlayDisk.open(disk, kept, "vm", "id")) {
      assertThat(read(o, 0, 3)).containsExactly(1, 2, 3);
      assertThat(read(o, 8192, 3)).containsExactly(4, 5, 6);
    }
  }

  /**
   * Between the check of the directory and the creation of its files, the name is swapped for a
   * link to another directory: the files are made in the directory checked (the old code checked
   * the real path, then created the files by name, in the other directory).
   */
  @Test
  void theFilesAreMadeInTheDirectoryCheckedNotWhereTheNameLeadsAfterwards() throws Exception {
    MemoryDisk disk = new MemoryDisk(new byte[65536], 4096);
    Path parent = Files.createDirectory(tmp.resolve("p"));
    Path named = Files.createDirectory(parent.resolve("ov"));
    Path kept = parent.resolve("kept");
    Path elsewhere = Files.createDirectory(tmp.resolve("elsewhere"));
    Files.setAttribute(elsewhere, "unix:mode", 0777);
    Files.writeString(elsewhere.resolve("vm.overlay"), "planted");
    OverlayDisk.afterCheck =
        () -> {
          try {
            Files.move(named, kept);
            Files.createSymbolicLink(named, elsewhere);
          } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
          }
        };
    try (OverlayDisk o = OverlayDisk.open(disk, named, "vm", "id")) {
      OverlayDisk.afterCheck = null;
      o.write(0, ByteBuffer.wrap(new byte[] {7, 7, 7}));
    } finally {
      OverlayDisk.afterCheck = null;
    }
    assertThat(Files.readString(elsewhere.resolve("vm.overlay"))).isEqualTo("planted");
    try (var files = Files.list(elsewhere)) {
      assertThat(files).hasSize(1);
    }
    assertThat(Files.isRegularFile(kept.resolve("vm.overlay-map"), NOFOLLOW_LINKS)).isTrue();
    assertThat(Files.size(kept.resolve("vm.overlay"))).isEqualTo(4096);
  }

  /**
   * A link in a sticky directory others can write (the audit's {@code /var/tmp/ov}) is refused even
   * where it leads to a private directory: whoever can write there could swap it.
   */
  @Test
  void aLinkInADirectoryOthersCanWriteIsRefused() throws Exception {
    MemoryDisk disk = new MemoryDisk(new byte[65536], 4096);
    Path vartmp = Files.createDirectory(tmp.resolve("vartmp"));
    Files.setAttribute(vartmp, "unix:mode", 01777);
    Path mine = Files.createDirectory(tmp.resolve("mine"));
    Path link = Files.createSymbolicLink(vartmp.resolve("ov"), mine);
    assertThatThrownBy(() -> OverlayDisk.open(disk, link, "vm", "id"))
        .isInstanceOf(java.nio.file.AccessDeniedException.class)
        .hasMessageContaining("refusing the overlay directory")
        .hasMessageContaining("'ov' on the way to overlay directory");
    try (var files = Files.list(mine)) {
      assertThat(files).isEmpty();
    }
    // a directory of its own there is fine (a sticky directory above it aside)
    try (OverlayDisk o = OverlayDisk.open(disk, vartmp.resolve("own"), "vm", "id")) {
      o.write(0, ByteBuffer.wrap(new byte[] {1}));
    }
  }

  /** An existing overlay file must be this overlay's own: a regular file with one name. */
  @Test
  void anExistingDataFileWithAnotherNameIsRefused() throws Exception {
    MemoryDisk disk = new MemoryDisk(new byte[65536], 4096);
    Path ov = tmp.resolve("ov");
    try (OverlayDisk o = OverlayDisk.open(disk, ov, "vm", "id")) {
      o.write(0, ByteBuffer.wrap(new byte[] {1}));
    }
    Files.createLink(tmp.resolve("other"), ov.resolve("vm.overlay"));
    assertThatThrownBy(() -> OverlayDisk.open(disk, ov, "vm", "id"))
        .isInstanceOf(java.nio.file.AccessDeniedException.class)
        .hasMessageContaining("refusing the overlay file: it has 2 names");
    Files.delete(tmp.resolve("other"));
    Files.delete(ov.resolve("vm.overlay"));
    Files.createSymbolicLink(ov.resolve("vm.overlay"), tmp.resolve("other"));
    assertThatThrownBy(() -> OverlayDisk.open(disk, ov, "vm", "id"))
        .isInstanceOf(java.nio.file.AccessDeniedException.class)
        .hasMessageContaining("is not a regular file");
    assertThat(Files.exists(tmp.resolve("other"))).isFalse();
  }
}
