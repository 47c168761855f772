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
}
