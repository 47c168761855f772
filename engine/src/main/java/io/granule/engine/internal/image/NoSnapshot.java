package io.granule.engine.internal.image;

import io.granule.engine.spi.SnapshotProvider;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.osgi.service.component.annotations.Component;

/**
 * {@code none}: reads the sources as they are. Consistent for an offline disk or a VM that is shut
 * down; crash-consistent at best for a live one.
 */
@Component(service = SnapshotProvider.class)
public final class NoSnapshot implements SnapshotProvider {
  @Override
  public String name() {
    return "none";
  }

  @Override
  public Hold begin(List<Path> targets, Duration maxHold) {
    return new Hold() {
      @Override
      public void check() {}

      @Override
      public void close() {}
    };
  }
}
