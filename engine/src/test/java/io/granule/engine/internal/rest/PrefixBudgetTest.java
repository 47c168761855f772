package io.granule.engine.internal.rest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * One filesystem that does not answer (a dead NFS mount a monitor keeps polling) held all the API's
 * path-touching threads, and every repository's requests got 503. Requests naming paths under one
 * top directory hold at most {@link ApiServlet#PER_PREFIX} of them.
 */
class PrefixBudgetTest {
  @Test
  void requestsStuckUnderOneDirectoryLeaveTheOthersServed() throws Exception {
    CountDownLatch stuck = new CountDownLatch(ApiServlet.PER_PREFIX);
    CountDownLatch release = new CountDownLatch(1);
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < ApiServlet.PER_PREFIX; i++) {
      int n = i;
      Thread t =
          new Thread(
              () -> {
                ApiServlet.beginClaims();
                try {
                  ApiServlet.path("/mnt/dead-nfs/repo" + n, "repo"); // then blocks on it
                  stuck.countDown();
                  release.await();
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                } finally {
                  ApiServlet.releasePrefixes();
                }
              });
      t.start();
      threads.add(t);
    }
    assertThat(stuck.await(10, TimeUnit.SECONDS)).isTrue();
    ApiServlet.beginClaims();
    try {
      assertThatThrownBy(() -> ApiServlet.path("/mnt/dead-nfs/other/repo", "repo"))
          .isInstanceOf(ApiServlet.BadRequest.class)
          .hasMessageContaining("waiting on paths under /mnt/dead-nfs");
      assertThat(ApiServlet.path("/srv/backups/repo", "repo"))
          .isEqualTo(Path.of("/srv/backups/repo"));
      assertThat(ApiServlet.path("/mnt/live/repo", "repo")).isEqualTo(Path.of("/mnt/live/repo"));
    } finally {
      ApiServlet.releasePrefixes();
    }
    release.countDown();
    for (Thread t : threads) {
      t.join(10_000);
    }
    ApiServlet.beginClaims();
    try {
      assertThat(ApiServlet.path("/mnt/dead-nfs/repo0", "repo")).isNotNull(); // answered again
    } finally {
      ApiServlet.releasePrefixes();
    }
  }

  /**
   * A request counts once against a directory however many of its paths are there: a backup of 12
   * disks in /var/lib/libvirt/images was refused 503 on an idle server.
   */
  @Test
  void oneRequestNamingManyPathsUnderADirectoryCountsOnce() {
    for (int round = 0; round < 2; round++) {
      ApiServlet.beginClaims();
      try {
        ApiServlet.path("/var/lib/granule-repo", "repo");
        for (int i = 0; i < 3 * ApiServlet.PER_PREFIX; i++) {
          assertThat(ApiServlet.path("/var/lib/libvirt/images/vm" + i + ".qcow2", "path"))
              .isNotNull();
        }
      } finally {
        ApiServlet.releasePrefixes();
      }
    }
  }
}
