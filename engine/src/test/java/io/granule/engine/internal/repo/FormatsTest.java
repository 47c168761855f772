package io.granule.engine.internal.repo;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.index.IndexEntry;
import io.granule.engine.internal.repo.index.IndexWriter;
import io.granule.engine.internal.repo.pack.PackWriter;
import io.granule.engine.internal.repo.snapshot.DynamicIndex;
import io.granule.engine.internal.repo.snapshot.DynamicIndexReader;
import io.granule.engine.internal.repo.snapshot.DynamicIndexWriter;
import io.granule.engine.internal.repo.snapshot.FixedIndex;
import io.granule.engine.internal.repo.snapshot.FixedIndexWriter;
import io.granule.engine.internal.repo.snapshot.Manifest;
import io.granule.engine.internal.repo.snapshot.ManifestWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Pins the byte layouts documented in docs/formats.md. */
class FormatsTest {
  private static final ChunkId ID = new ChunkId(0x0102030405060708L, 0, 0, 0x0aL);

  private static String hex(byte[] b, int from, int to) {
    return HexFormat.of().formatHex(Arrays.copyOfRange(b, from, to));
  }

  @Test
  void packHeaderTrailerAndFooter() {
    PackWriter w = new PackWriter(100);
    w.add(ID, new byte[] {9, 8, 7}, 3, 0);
    byte[] p = w.finish();
    assertThat(p).hasSize(8 + 3 + 56 + 24);
    assertThat(new String(p, 0, 4, StandardCharsets.US_ASCII)).isEqualTo("GPAK");
    assertThat(hex(p, 4, 8)).isEqualTo("00010000");
    assertThat(hex(p, 8, 11)).isEqualTo("090807");
    assertThat(hex(p, 11, 43)).isEqualTo(ID.toString());
    ByteBuffer t = ByteBuffer.wrap(p, 43, 24);
    assertThat(t.getLong()).as("offset").isEqualTo(8);
    assertThat(t.getInt()).as("stored").isEqualTo(3);
    assertThat(t.getInt()).as("raw").isEqualTo(3);
    assertThat(t.getInt()).as("flags").isZero();
    ByteBuffer f = ByteBuffer.wrap(p, p.length - 24, 24);
    assertThat(f.getLong()).as("trailer offset").isEqualTo(11);
    assertThat(f.getInt()).as("count").isEqualTo(1);
    f.getInt();
    assertThat(f.getInt()).isEqualTo(BlobFrames.crc32c(p, 0, p.length - 8));
    assertThat(new String(p, p.length - 4, 4, StandardCharsets.US_ASCII)).isEqualTo("KAPG");
  }

  @Test
  void framesOfIndexFixedIndexAndManifest() {
    byte[] index =
        IndexWriter.write(
            List.of(new IndexEntry(ID, new ChunkLocation(new PackId(1, 2), 8, 3, 3, 1))));
    assertThat(index).hasSize(12 + 4 + 65);
    assertThat(hex(index, 0, 8)).isEqualTo("4749445800010000");
    assertThat(hex(index, 8, 12)).isEqualTo("00000001");

    FixedIndex fx = new FixedIndex(4096, 5000);
    fx.set(1, ID);
    byte[] f = FixedIndexWriter.write(fx);
    assertThat(f).hasSize(12 + 20 + 64);
    assertThat(hex(f, 0, 8)).isEqualTo("4746495800010000");
    assertThat(hex(f, 8, 28)).isEqualTo("00001000" + "0000000000001388" + "0000000000000002");
    assertThat(hex(f, 28, 60)).isEqualTo("00".repeat(32));
    assertThat(hex(f, 60, 92)).isEqualTo(ID.toString());

    DynamicIndex dyn = new DynamicIndex();
    dyn.set(dyn.append(100), ID);
    dyn.append(50);
    byte[] d = DynamicIndexWriter.write(dyn);
    assertThat(d).hasSize(12 + 8 + 80);
    assertThat(hex(d, 0, 8)).isEqualTo("4744594e00010000");
    assertThat(hex(d, 8, 24)).isEqualTo("0000000000000002" + "0000000000000064");
    assertThat(hex(d, 24, 56)).isEqualTo(ID.toString());
    assertThat(hex(d, 56, 64)).isEqualTo("0000000000000096");
    DynamicIndex back =
        DynamicIndexReader.read(
            new io.granule.engine.internal.repo.blob.BlobName(
                io.granule.engine.internal.repo.blob.BlobType.DYNAMIC_INDEX, "dd"),
            d);
    assertThat(back.size()).isEqualTo(150);
    assertThat(back.get(0)).isEqualTo(ID);
    assertThat(back.get(1)).isEqualTo(ChunkId.ZERO);

    Manifest m =
        new Manifest(
            1,
            "ab".repeat(32),
            "2026-11-25T16:00:00Z",
            "db1",
            List.of("nightly"),
            null,
            List.of(),
            List.of(),
            Map.of());
    byte[] s = ManifestWriter.write(m);
    assertThat(hex(s, 0, 8)).isEqualTo("47534e5000010000");
    String json = new String(s, 8, s.length - 12, StandardCharsets.UTF_8);
    assertThat(json).startsWith("{").contains("\"host\" : \"db1\"").doesNotContain("parent");
  }
}
