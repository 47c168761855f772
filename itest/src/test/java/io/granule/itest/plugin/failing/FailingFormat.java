package io.granule.itest.plugin.failing;

import io.granule.engine.spi.DiskImage;
import io.granule.engine.spi.DiskImageFormat;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;

/** A test-only plugin whose component throws on activation. */
@Component(service = DiskImageFormat.class, immediate = true)
public final class FailingFormat implements DiskImageFormat {

  @Activate
  void activate() {
    throw new IllegalStateException("boom: this test plugin always fails to activate");
  }

  @Override
  public String name() {
    return "failing";
  }

  @Override
  public int probe(ByteBuffer head, long fileSize) {
    return 0;
  }

  @Override
  public DiskImage open(Path path) {
    throw new UnsupportedOperationException();
  }
}
