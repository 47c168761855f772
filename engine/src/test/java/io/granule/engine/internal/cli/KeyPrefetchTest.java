package io.granule.engine.internal.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@link KeyPrefetch} reads from a command line and the environment before the command. */
class KeyPrefetchTest {
  @TempDir Path dir;

  private Path repoWithKeys() throws Exception {
    Path repo = dir.resolve("repo");
    Files.createDirectories(repo.resolve("keys"));
    return repo;
  }

  @Test
  void repoAndPasswordFromOptionsOrEnvironment() throws Exception {
    Path repo = repoWithKeys();
    Path pwFile = dir.resolve("pw");
    Files.writeString(pwFile, "from-file\nsecond line\n");
    Map<String, String> env = Map.of("GRANULE_PASSWORD", "from-env");

    KeyPrefetch.Target t =
        KeyPrefetch.target(List.of("backup", "--repo", repo.toString(), "--disk", "x"), env::get);
    assertThat(t.repo()).isEqualTo(repo);
    assertThat(new String(t.password())).isEqualTo("from-env");

    t = KeyPrefetch.target(List.of("snapshots", "--repo=" + repo), env::get);
    assertThat(t.repo()).isEqualTo(repo);

    t =
        KeyPrefetch.target(
            List.of("restore", "disk", "latest", "--password-file", pwFile.toString()),
            Map.of("GRANULE_REPO", repo.toString(), "GRANULE_PASSWORD", "from-env")::get);
    assertThat(t.repo()).isEqualTo(repo);
    assertThat(new String(t.password())).isEqualTo("from-file");

    t =
        KeyPrefetch.target(
            List.of("verify", "--password-file=" + pwFile, "--repo", repo.toString()), k -> null);
    assertThat(new String(t.password())).isEqualTo("from-file");
  }

  @Test
  void nothingToDeriveWithoutALocalEncryptedRepositoryOrAPasswordThatNeedsNoPrompt()
      throws Exception {
    Path repo = repoWithKeys();
    Map<String, String> env = Map.of("GRANULE_PASSWORD", "pw");
    // no password without a prompt
    assertThat(KeyPrefetch.target(List.of("snapshots", "--repo", repo.toString()), k -> null))
        .isNull();
    // no repository
    assertThat(KeyPrefetch.target(List.of("snapshots"), env::get)).isNull();
    // an S3 repository
    assertThat(KeyPrefetch.target(List.of("snapshots", "--repo", "s3:bucket/prefix"), env::get))
        .isNull();
    // an unencrypted repository, or none there
    Files.createDirectories(dir.resolve("plain"));
    assertThat(
            KeyPrefetch.target(
                List.of("snapshots", "--repo", dir.resolve("plain").toString()), env::get))
        .isNull();
    // after "--" nothing is an option
    assertThat(KeyPrefetch.target(List.of("snapshots", "--", "--repo", repo.toString()), env::get))
        .isNull();
    // a password file that is a pipe is left for the command to read
    Path fifo = dir.resolve("fifo");
    assertThat(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor()).isZero();
    assertThat(
            KeyPrefetch.target(
                List.of("snapshots", "--repo", repo.toString(), "--password-file", fifo.toString()),
                k -> null))
        .isNull();
    // a --repo without its value
    assertThat(KeyPrefetch.target(List.of("snapshots", "--repo"), env::get)).isNull();
  }
}
