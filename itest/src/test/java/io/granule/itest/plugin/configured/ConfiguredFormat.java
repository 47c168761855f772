package io.granule.itest.plugin.configured;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.ConfigurationPolicy;

/**
 * A test-only format with one instance per factory configuration (as a plugin has one instance per
 * database or disk): its name comes from the configuration's {@code name} property.
 */
@Component(
    service = DiskImageFormat.class,
    configurationPid = ConfiguredFormat.PID,
    configurationPolicy = ConfigurationPolicy.REQUIRE)
public final class ConfiguredFormat implements DiskImageFormat {
  public static final String PID = "io.granule.itest.configured";

  /** The configuration. */
  public @interface Config {
    String name();
  }

  private final String name;

  @Activate
  public ConfiguredFormat(Config config) {
    this.name = config.name();
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return 0;
  }

  @Override
  public DiskImage open(Path path) {
    throw new UnsupportedOperationException("test format " + name + " opens nothing");
  }
}
