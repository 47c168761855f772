package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Only regular files and block devices are disks: a FIFO blocked a backup (and a REST image info
 * request) forever in open(), and /dev/zero was called a block device whose size was unknown.
 */
class ImageSourceTypeTest {
  @TempDir Path tmp;

  @Test
  void fifosCharacterDevicesAndDirectoriesAreRefusedAtOnce() throws Exception {
    Path fifo = tmp.resolve("pipe");
    Process p = new ProcessBuilder("mkfifo", fifo.toString()).start();
    p.waitFor(10, TimeUnit.SECONDS);
    assertThatThrownBy(() -> ImageInspector.requireImageOrDevice(fifo))
        .isInstanceOf(ImageException.class)
        .hasMessageContaining("is a FIFO (named pipe), not a disk image or a block device")
        .hasMessageContaining("--stream");
    assertThatThrownBy(() -> new ImageInspector(null).detect(fifo, "raw"))
        .as("also when the format is given (nothing probes the file then)")
        .isInstanceOf(ImageException.class);
    assertThatThrownBy(() -> ImageInspector.requireImageOrDevice(Path.of("/dev/zero")))
        .isInstanceOf(ImageException.class)
        .hasMessageContaining("is a character device");
    assertThatThrownBy(() -> ImageInspector.requireImageOrDevice(tmp))
        .isInstanceOf(ImageException.class)
        .hasMessageContaining("is a directory");
    assertThatThrownBy(() -> ImageInspector.requireImageOrDevice(tmp.resolve("none")))
        .isInstanceOf(ImageException.class)
        .hasMessageContaining("no such file");

    Path file = Files.write(tmp.resolve("disk.raw"), new byte[4096]);
    Path link = Files.createSymbolicLink(tmp.resolve("link.raw"), file);
    assertThatCode(() -> ImageInspector.requireImageOrDevice(file)).doesNotThrowAnyException();
    assertThatCode(() -> ImageInspector.requireImageOrDevice(link)).doesNotThrowAnyException();
    for (String dev : new String[] {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0"}) {
      if (Files.exists(Path.of(dev))) {
        assertThatCode(() -> ImageInspector.requireImageOrDevice(Path.of(dev)))
            .as(dev)
            .doesNotThrowAnyException();
      }
    }
  }
}
