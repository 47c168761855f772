package io.granule.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class ParentWatchTest {
  @Test
  void onlyAPositiveDecimalPidIsALauncher() {
    assertThat(ParentWatch.launcherPid("4242")).isEqualTo(4242L);
    assertThat(ParentWatch.launcherPid(null)).isNull();
    assertThat(ParentWatch.launcherPid("")).isNull();
    assertThat(ParentWatch.launcherPid("0")).isNull();
    assertThat(ParentWatch.launcherPid("-1")).isNull();
    assertThat(ParentWatch.launcherPid("12x")).isNull();
    assertThat(ParentWatch.launcherPid("12345678901")).isNull();
  }

  @Test
  void theParentIsTheLauncherOnlyWhileItIsThatProcess() {
    Optional<ProcessHandle> parent = ProcessHandle.current().parent();
    assertThat(parent).isPresent();
    long pid = parent.get().pid();
    assertThat(ParentWatch.isParent(pid, parent)).isTrue();
    assertThat(ParentWatch.isParent(pid + 1, parent)).isFalse();
    assertThat(ParentWatch.isParent(pid, Optional.empty())).as("an orphan's init").isFalse();
  }

  @Test
  void withoutALauncherNothingIsWatched() {
    System.clearProperty("granule.launcher.pid");
    assertThat(ParentWatch.start()).isNull();
  }

  /**
   * A launcher named that is not this process's parent at start (a /proc of another pid namespace
   * shows another parent): nothing is watched, and this JVM is not stopped (audit M4: it exited 143
   * at once on every dump run).
   */
  @Test
  void aLauncherThatIsNotTheParentAtStartIsNotWatched() {
    long notParent = ProcessHandle.current().pid(); // this process: never its own parent
    System.setProperty("granule.launcher.pid", Long.toString(notParent));
    try {
      assertThat(ParentWatch.start()).isNull();
    } finally {
      System.clearProperty("granule.launcher.pid");
    }
  }

  @Test
  void theParentNamedIsWatchedWhileItRuns() throws Exception {
    long parent = ProcessHandle.current().parent().orElseThrow().pid();
    System.setProperty("granule.launcher.pid", Long.toString(parent));
    try {
      Thread t = ParentWatch.start();
      assertThat(t).isNotNull();
      Thread.sleep(3 * ParentWatch.PERIOD_MS);
      assertThat(t.isAlive()).as("still watching: the parent runs").isTrue();
      t.interrupt();
      t.join(5000);
      assertThat(t.isAlive()).isFalse();
    } finally {
      System.clearProperty("granule.launcher.pid");
    }
  }
}
