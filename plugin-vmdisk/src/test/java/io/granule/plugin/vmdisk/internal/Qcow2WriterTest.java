package io.granule.plugin.vmdisk.internal;

import io.granule.engine.spi.DiskImageFormat;
import java.util.List;
import java.util.Map;

class Qcow2WriterTest extends DiskImageWriterContractTest {
  @Override
  protected DiskImageFormat format() {
    return new Qcow2Format();
  }

  @Override
  protected String qemuFormat() {
    return "qcow2";
  }

  /** 4 KiB clusters give several L2 tables and refcount blocks even on small disks. */
  @Override
  protected List<Map<String, String>> optionVariants() {
    return List.of(Map.of(), Map.of("cluster_size", "4k"), Map.of("cluster_size", "2M"));
  }

  @Override
  protected int allocationUnit(Map<String, String> options) {
    return switch (options.getOrDefault("cluster_size", "64k")) {
      case "4k" -> 4 << 10;
      case "2M" -> 2 << 20;
      default -> 64 << 10;
    };
  }
}
