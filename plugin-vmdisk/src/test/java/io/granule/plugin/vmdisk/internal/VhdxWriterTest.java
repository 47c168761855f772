package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImageFormat;
import java.util.List;
import java.util.Map;

class VhdxWriterTest extends DiskImageWriterContractTest {
  @Override
  protected DiskImageFormat format() {
    return new VhdxFormat();
  }

  @Override
  protected String qemuFormat() {
    return "vhdx";
  }

  /** Larger blocks than the default, as Hyper-V makes them. */
  @Override
  protected List<Map<String, String>> optionVariants() {
    return List.of(Map.of(), Map.of("block_size", "8M"));
  }

  @Override
  protected int allocationUnit(Map<String, String> options) {
    return options.containsKey("block_size") ? 8 << 20 : 1 << 20;
  }
}
