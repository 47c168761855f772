package io.granule.engine.internal.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.plugin.PluginLeases;
import io.granule.engine.internal.plugin.PluginLeases.Origin;
import io.granule.engine.internal.plugin.PluginUnavailableException;
import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import io.granule.engine.spi.DiskImageWriter;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A restore's writer holds its plugin's lease; a revoked lease stops it before it finishes. */
class LeasedDiskImageWriterTest {
  /** Records what reaches the plugin's writer. */
  static final class Recording implements DiskImageFormat {
    final List<String> calls = new ArrayList<>();

    @Override
    public String name() {
      return "rec";
    }

    @Override
    public int probe(ByteBuffer head, long fileSize) {
      return 0;
    }

    @Override
    public DiskImage open(Path path) {
      throw new UnsupportedOperationException();
    }

    @Override
    public boolean canCreate() {
      return true;
    }

    @Override
    public DiskImageWriter create(Path target, long size, Map<String, String> options) {
      calls.add("create " + size);
      return new DiskImageWriter() {
        @Override
        public void write(long offset, ByteBuffer data) {
          calls.add("write " + offset);
        }

        @Override
        public void finish() {
          calls.add("finish");
        }

        @Override
        public void close() {
          calls.add("close");
        }
      };
    }
  }

  @Test
  void aPluginUpdateDuringTheRestoreStopsItBeforeFinish() throws Exception {
    PluginLeases<DiskImageFormat> leases =
        new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ZERO);
    Recording format = new Recording();
    leases.added("k", format, new Origin("io.example.rec", "1.0.0"), 0);
    LeasedDiskImageWriter w =
        LeasedDiskImageWriter.create(leases.acquire("rec"), Path.of("x"), 4096, Map.of());
    w.write(0, ByteBuffer.allocate(512));
    assertThat(leases.removed("k")).isEqualTo(1);
    assertThatThrownBy(() -> w.write(512, ByteBuffer.allocate(512)))
        .isInstanceOf(PluginUnavailableException.class)
        .hasMessageContaining("plugin io.example.rec 1.0.0 (DiskImageFormat 'rec') was updated");
    assertThatThrownBy(w::finish).isInstanceOf(PluginUnavailableException.class);
    w.close();
    assertThat(format.calls).containsExactly("create 4096", "write 0", "close");
  }

  @Test
  void aFailedCreateReleasesTheLease() throws Exception {
    PluginLeases<DiskImageFormat> leases =
        new PluginLeases<>("DiskImageFormat", DiskImageFormat::name, Duration.ofSeconds(5));
    leases.added("raw", new RawFormat(), new Origin("io.granule.engine", "0.1.0"), 0);
    assertThatThrownBy(
            () -> LeasedDiskImageWriter.create(leases.acquire("raw"), Path.of("x"), 1, Map.of()))
        .isInstanceOf(UnsupportedOperationException.class)
        .hasMessage("disk image format 'raw' cannot create images");
    // No lease is left open: removal does not wait for the drain timeout.
    assertThat(leases.removed("raw")).isZero();
  }
}
