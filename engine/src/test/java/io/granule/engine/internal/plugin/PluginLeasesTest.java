package io.granule.engine.internal.plugin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.plugin.PluginLeases.Lease;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class PluginLeasesTest {
  record Svc(String name) {}

  static final Origin V1 = new Origin("io.example.plugin", "1.0.0");
  static final Origin V2 = new Origin("io.example.plugin", "2.0.0");

  PluginLeases<Svc> leases(Duration drain) {
    return new PluginLeases<>("Svc", Svc::name, drain);
  }

  @Test
  void acquireNamesWhatIsAvailableWhenMissing() {
    PluginLeases<Svc> l = leases(Duration.ofSeconds(1));
    l.added(1L, new Svc("qcow2"), V1, 0);
    l.added(2L, new Svc("vmdk"), V1, 0);
    assertThatThrownBy(() -> l.acquire("vhdx"))
        .isInstanceOf(PluginUnavailableException.class)
        .hasMessage(
            "no plugin provides Svc 'vhdx' (available: qcow2, vmdk); deploy the plugin that"
                + " provides it into the plugins folder");
  }

  @Test
  void highestRankingWinsAmongEqualNames() {
    PluginLeases<Svc> l = leases(Duration.ofSeconds(1));
    Svc low = new Svc("qcow2");
    Svc high = new Svc("qcow2");
    l.added(1L, low, V1, 0);
    l.added(2L, high, V2, 10);
    try (Lease<Svc> lease = l.acquire("qcow2")) {
      assertThat(lease.get()).isSameAs(high);
      assertThat(lease.origin()).isEqualTo(V2);
    }
    List<Lease<Svc>> all = l.acquireAll();
    assertThat(all.get(0).get()).isSameAs(high);
    all.forEach(Lease::close);
  }

  @Test
  void removalWaitsForTheOperationToFinishOnTheOldVersion() throws Exception {
    PluginLeases<Svc> l = leases(Duration.ofSeconds(30));
    l.added(1L, new Svc("qcow2"), V1, 0);
    Lease<Svc> lease = l.acquire("qcow2");
    CountDownLatch removing = new CountDownLatch(1);
    CompletableFuture<Integer> removal =
        CompletableFuture.supplyAsync(
            () -> {
              removing.countDown();
              try {
                return l.removed(1L);
              } catch (InterruptedException e) {
                throw new IllegalStateException(e);
              }
            });
    removing.await();
    // The departing service stays usable by the running operation while removal waits.
    Thread.sleep(200);
    assertThat(removal).isNotDone();
    assertThat(lease.get().name()).isEqualTo("qcow2");
    assertThat(l.names()).isEmpty(); // new operations no longer see it
    lease.close();
    assertThat(removal.get(5, TimeUnit.SECONDS)).isZero();
  }

  @Test
  void operationOutlivingTheDrainTimeoutIsRevokedWithAMessageNamingThePlugin() throws Exception {
    PluginLeases<Svc> l = leases(Duration.ofMillis(100));
    l.added(1L, new Svc("qcow2"), V1, 0);
    Lease<Svc> lease = l.acquire("qcow2");
    long t0 = System.nanoTime();
    assertThat(l.removed(1L)).isEqualTo(1);
    assertThat(Duration.ofNanos(System.nanoTime() - t0))
        .isGreaterThanOrEqualTo(Duration.ofMillis(100));
    assertThatThrownBy(lease::get)
        .isInstanceOf(PluginUnavailableException.class)
        .hasMessageContaining("plugin io.example.plugin 1.0.0 (Svc 'qcow2') was updated or removed")
        .hasMessageContaining("run it again");
    lease.close();
  }

  @Test
  void removingAnUnknownServiceIsANoOp() throws Exception {
    assertThat(leases(Duration.ofSeconds(1)).removed(42L)).isZero();
  }
}
