package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A repository's cache directory records its last use, for the runtime's pruning. */
class RepositoryCacheTest {
  @TempDir Path cache;

  @Test
  void resolvingTheDirectoryMarksItUsed() throws IOException {
    String id = "ab".repeat(32);
    Path dir = RepositoryCache.dir(cache, id);
    assertThat(dir).isEqualTo(cache.resolve(id));
    Path used = dir.resolve(RepositoryCache.USED);
    assertThat(used).isRegularFile();
    assertThat(Files.getLastModifiedTime(used).toInstant())
        .isAfter(Instant.now().minus(Duration.ofMinutes(5)));
  }

  @Test
  void theMarkIsRefreshedOnlyWhenADayOld() throws IOException {
    Path dir = cache.resolve("cd".repeat(32));
    Instant now = Instant.parse("2026-12-03T10:00:00Z");
    RepositoryCache.markUsed(dir, now);
    Path used = dir.resolve(RepositoryCache.USED);
    Files.setLastModifiedTime(used, FileTime.from(now.minus(Duration.ofHours(23))));

    RepositoryCache.markUsed(dir, now);
    assertThat(Files.getLastModifiedTime(used).toInstant())
        .isEqualTo(now.minus(Duration.ofHours(23)));

    RepositoryCache.markUsed(dir, now.plus(Duration.ofHours(2)));
    assertThat(Files.getLastModifiedTime(used).toInstant())
        .isEqualTo(now.plus(Duration.ofHours(2)));
  }

  @Test
  void anUnwritableCacheIsNoError() throws IOException {
    Path file = Files.writeString(cache.resolve("not-a-dir"), "x");
    // the cache "directory" is a file: nothing can be created under it
    RepositoryCache.markUsed(file.resolve("ef".repeat(32)), Instant.now());
    assertThat(file).hasContent("x");
  }
}
