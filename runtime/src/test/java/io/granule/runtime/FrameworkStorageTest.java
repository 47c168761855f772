package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** What a start deletes of the storage directories killed processes left in the shared /tmp. */
class FrameworkStorageTest {
  @TempDir Path tmp;

  private Path leftBehind(String name) throws Exception {
    Path d = Files.createDirectory(tmp.resolve(name));
    Files.createFile(d.resolve(".owner"));
    Files.writeString(Files.createDirectory(d.resolve("sub")).resolve("f"), "x");
    Files.setLastModifiedTime(d, FileTime.from(Instant.now().minusSeconds(3600)));
    return d;
  }

  /**
   * Only this user's own directories, that no one else can write, are deleted: another user's in a
   * shared /tmp was deleted by name while he swapped a subdirectory for a link to /etc.
   */
  @Test
  void onlyThisUsersOwnUnwritableDirectoriesAreRemoved() throws Exception {
    long me = LaunchOptions.uid();
    Path mine = leftBehind("granule-osgi-1-a");
    Path open = leftBehind("granule-osgi-2-b");
    Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
    Path victim = Files.createDirectory(tmp.resolve("victim"));
    Files.writeString(victim.resolve("precious"), "x");
    Files.createFile(victim.resolve(".owner"));
    Path link = Files.createSymbolicLink(tmp.resolve("granule-osgi-3-c"), victim);

    FrameworkStorage.removeStale(tmp, me + 1); // as another user: nothing of mine is his
    assertThat(mine).exists();

    FrameworkStorage.removeStale(tmp, me);
    assertThat(mine).doesNotExist();
    assertThat(open.resolve("sub/f")).as("writable by others").exists();
    assertThat(link).as("a link").isSymbolicLink();
    assertThat(victim.resolve("precious")).exists();
  }

  /** An {@code .owner} that is not a regular file (a FIFO would hang the start) is left alone. */
  @Test
  @Timeout(value = 20, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
  void anOwnerThatIsNotAFileIsNotOpened() throws Exception {
    Path d = leftBehind("granule-osgi-4-d");
    Files.delete(d.resolve(".owner"));
    Process mkfifo = new ProcessBuilder("mkfifo", d.resolve(".owner").toString()).start();
    assertThat(mkfifo.waitFor()).isZero();
    FrameworkStorage.removeStale(tmp, LaunchOptions.uid());
    assertThat(d.resolve("sub/f")).exists();
  }
}
