package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImageFormat;
import java.util.Map;

class VmdkWriterTest extends DiskImageWriterContractTest {
  @Override
  protected DiskImageFormat format() {
    return new VmdkFormat();
  }

  @Override
  protected String qemuFormat() {
    return "vmdk";
  }

  @Override
  protected int allocationUnit(Map<String, String> options) {
    return 64 << 10;
  }
}
