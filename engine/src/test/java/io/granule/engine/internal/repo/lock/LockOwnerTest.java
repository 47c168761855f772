package io.granule.engine.internal.repo.lock;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** What a lock records about its holder, and when its pid may be judged. */
class LockOwnerTest {
  /**
   * In a PID namespace made without its own /proc ({@code unshare --pid --fork}), the pid a process
   * has is not the one /proc shows: pids looked up there are another namespace's, and a live
   * holder's lock was judged stale (plain {@code unlock} removed it, a prune ran beside it). Such a
   * process records no PID namespace, so no one judges its pid, and it judges none.
   */
  @Test
  void thePidNamespaceIsRecordedOnlyWhereProcShowsThisProcessUnderItsOwnPid() {
    long pid = ProcessHandle.current().pid();
    assertThat(LockOwner.procShowsOwnPids(pid)).isTrue();
    assertThat(LockOwner.procShowsOwnPids(pid + 1)).isFalse();
    assertThat(LockOwner.current().pidNamespace()).startsWith("pid:[");
  }
}
