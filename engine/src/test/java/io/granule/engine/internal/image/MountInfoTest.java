package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MountInfoTest {
  @TempDir Path tmp;

  /**
   * audit15: a mount point whose name is not UTF-8 (a FUSE mount any user can make) made every
   * strict read of the mount table fail: --freeze refused, a restore's check of mounted devices
   * less precise. It spoils its own line only.
   */
  @Test
  void aMountPointThatIsNotUtf8SpoilsOnlyItsOwnLine() throws Exception {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.write("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n".getBytes(StandardCharsets.UTF_8));
    b.write("40 22 0:50 / /home/gu1/".getBytes(StandardCharsets.UTF_8));
    b.write(new byte[] {(byte) 0xff, (byte) 0xfe});
    b.write(" rw - fuse.sshfs x rw\n".getBytes(StandardCharsets.UTF_8));
    b.write("41 22 8:17 / /srv/data rw - ext4 /dev/sdb1 rw\n".getBytes(StandardCharsets.UTF_8));
    Path table = Files.write(tmp.resolve("mountinfo"), b.toByteArray());
    assertThat(MountInfo.lines(table)).hasSize(3);
    String[] m = BlockDeviceClaim.mountHolding(Path.of("/srv/data/vm.img"), table);
    assertThat(m).isNotNull();
    assertThat(m[4]).isEqualTo("/srv/data");
    assertThat(m[2]).isEqualTo("8:17");
  }
}
