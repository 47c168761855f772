package io.granule.engine.internal.repo.pack;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import io.granule.engine.internal.repo.blob.LocalBlobStore;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PackTest {
  @TempDir Path tmp;
  private final ChunkHasher hasher = ChunkHasher.sha256();
  private final BlobName name = new BlobName(BlobType.PACK, "0123456789abcdef");

  private static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  private static byte[] text(int n) {
    byte[] b = new byte[n];
    byte[] line =
        "granule backs up block devices; dedup makes it cheap.\n"
            .getBytes(java.nio.charset.StandardCharsets.UTF_8);
    for (int i = 0; i < n; i++) {
      b[i] = line[i % line.length];
    }
    return b;
  }

  private record Built(byte[] file, List<PackEntry> entries, List<byte[]> plain) {}

  private Built build(ChunkCompressor c) {
    PackWriter w = new PackWriter(1 << 20);
    List<byte[]> plain = List.of(random(100_000, 1), text(200_000), random(5, 2), text(70_000));
    List<PackEntry> entries = new ArrayList<>();
    for (byte[] p : plain) {
      ChunkCompressor.Stored s = c.compress(p, 0, p.length);
      entries.add(w.add(hasher.hash(p, 0, p.length), s.bytes(), p.length, s.flags()));
    }
    return new Built(w.finish(), entries, plain);
  }

  @Test
  void compressorKeepsIncompressibleDataPlainAndCompressesText() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      byte[] r = random(65536, 3);
      ChunkCompressor.Stored s = c.compress(r, 0, r.length);
      assertThat(s.flags()).isZero();
      assertThat(s.bytes()).isEqualTo(r);
      byte[] t = text(65536);
      ChunkCompressor.Stored z = c.compress(t, 0, t.length);
      assertThat(z.flags()).isEqualTo(ChunkFlags.ZSTD);
      assertThat(z.bytes().length).isLessThan(t.length / 10);
      assertThat(c.decompress(z.bytes(), z.flags(), t.length)).isEqualTo(t);
    }
  }

  @Test
  void recordsWrittenInPlaceIntoAReusedBufferMakeTheSamePack() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      Built b = build(c);
      // a reused buffer, too small, holding an older pack's bytes
      java.nio.ByteBuffer old = java.nio.ByteBuffer.allocateDirect(1_000).put(random(1_000, 9));
      PackWriter w = new PackWriter(old);
      for (int i = 0; i < b.plain().size(); i++) {
        byte[] p = b.plain().get(i);
        java.nio.ByteBuffer src = java.nio.ByteBuffer.allocateDirect(p.length).put(p).flip();
        java.nio.ByteBuffer buf = w.reserve(Math.max(ChunkCompressor.bound(p.length), p.length));
        int n = c.compressInto(src, buf.duplicate().clear().position(w.size()));
        int flags = ChunkFlags.ZSTD;
        if (n < 0) {
          buf.put(w.size(), p);
          n = p.length;
          flags = 0;
        }
        PackEntry e = w.commit(hasher.hash(p, 0, p.length), n, p.length, flags);
        assertThat(e).isEqualTo(b.entries().get(i));
      }
      int length = w.finishInPlace();
      byte[] file = new byte[length];
      w.buffer().get(0, file);
      assertThat(file).isEqualTo(b.file());
      assertThat(w.buffer()).as("grown past the 1 kB it was given").isNotSameAs(old);
      assertThat(PackReader.parse(name, b.file())).isEqualTo(b.entries());
    }
  }

  @Test
  void commitWithoutReserveIsRefused() {
    PackWriter w = new PackWriter(java.nio.ByteBuffer.allocateDirect(100));
    assertThatThrownBy(() -> w.commit(ChunkId.ZERO, 200, 200, 0))
        .isInstanceOf(IllegalStateException.class);
  }

  @Test
  void almostIncompressibleDataIsStoredPlain() {
    byte[] d = random(100_000, 4);
    Arrays.fill(d, 0, 1000, (byte) 0);
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      assertThat(c.compress(d, 0, d.length).flags()).isZero();
    }
  }

  @Test
  void trailerAndRecordsRoundTripThroughTheStore() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      Built b = build(c);
      store.save(name, b.file());
      List<PackEntry> trailer = PackReader.loadTrailer(store, name);
      assertThat(trailer).isEqualTo(b.entries());
      assertThat(PackReader.parse(name, store.load(name))).isEqualTo(b.entries());
      for (int i = 0; i < trailer.size(); i++) {
        PackEntry e = trailer.get(i);
        byte[] stored = store.load(name, e.offset(), e.storedLength());
        PackReader.checkRecord(name, e, stored, 0);
        byte[] p = c.decompress(stored, e.flags(), e.rawLength());
        assertThat(p).isEqualTo(b.plain().get(i));
        assertThat(hasher.hash(p, 0, p.length)).isEqualTo(e.id());
      }
      assertThat(trailer.get(1).flags()).isEqualTo(ChunkFlags.ZSTD);
      assertThat(trailer.get(0).flags()).isZero();
    }
  }

  @Test
  void everySingleBitFlipIsDetectedByParse() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      byte[] file = build(c).file();
      Random r = new Random(7);
      for (int i = 0; i < 200; i++) {
        byte[] bad = file.clone();
        int at = r.nextInt(bad.length);
        bad[at] ^= (byte) (1 << r.nextInt(8));
        assertThatThrownBy(() -> PackReader.parse(name, bad))
            .as("flip at %d", at)
            .isInstanceOf(RepositoryCorruptedException.class)
            .hasMessageContaining("pack " + name)
            .hasMessageContaining("actual=");
      }
    }
  }

  @Test
  void truncatedPackFailsWhenReadingTheTrailer() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp);
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      byte[] file = build(c).file();
      store.save(name, Arrays.copyOf(file, file.length - 100));
      assertThatThrownBy(() -> PackReader.loadTrailer(store, name))
          .isInstanceOf(RepositoryCorruptedException.class)
          .hasMessageStartingWith("pack data/0123456789abcdef:");
    }
  }

  @Test
  void recordChecksumNamesTheChunk() {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      Built b = build(c);
      PackEntry e = b.entries().get(2);
      byte[] rec = Arrays.copyOfRange(b.file(), (int) e.offset(), (int) e.offset() + 5);
      rec[0] ^= 1;
      ChunkId id = e.id();
      assertThatThrownBy(() -> PackReader.checkRecord(name, e, rec, 0))
          .hasMessageContaining("chunk " + id)
          .hasMessageContaining("record checksum mismatch: actual=");
    }
  }

  private static PackEntry at(PackEntry e, long offset, int storedLength) {
    return new PackEntry(e.id(), offset, storedLength, e.rawLength(), e.flags(), e.crc());
  }

  /**
   * A trailer whose entries are not the records laid back to back from the header to the trailer,
   * one per chunk, is refused by every reader of trailers (audit12 M1: N entries naming one record
   * cost N decodes of it when the pack was adopted), and genuine packs of any size still read.
   */
  @Test
  void aTrailerNotLayingOutItsRecordsBackToBackIsRefused() throws Exception {
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      Built b = build(c);
      List<PackEntry> e = b.entries();
      PackEntry big = e.get(1);
      List<List<PackEntry>> forged =
          List.of(
              java.util.Collections.nCopies(1000, big), // one record named again and again
              List.of(e.get(0), e.get(1), e.get(1), e.get(2), e.get(3)), // a repeated entry
              List.of(e.get(1), e.get(0), e.get(2), e.get(3)), // out of order
              List.of(e.get(0), e.get(2), e.get(3)), // a gap: a record no entry names
              List.of(e.get(0), e.get(1), e.get(2)), // records after the last entry
              // overlapping: the third record said to start one byte inside the second
              List.of(
                  e.get(0),
                  e.get(1),
                  at(e.get(2), e.get(2).offset() - 1, e.get(2).storedLength() + 1),
                  e.get(3)),
              // the same chunk id on two records
              List.of(
                  e.get(0),
                  e.get(1),
                  new PackEntry(
                      e.get(1).id(),
                      e.get(2).offset(),
                      e.get(2).storedLength(),
                      e.get(2).rawLength(),
                      e.get(2).flags(),
                      e.get(2).crc()),
                  e.get(3)));
      LocalBlobStore store = new LocalBlobStore(tmp.resolve("r"));
      int k = 0;
      for (List<PackEntry> trailer : forged) {
        byte[] file = PackForgery.withTrailer(b.file(), trailer);
        assertThatThrownBy(() -> PackReader.parse(name, file))
            .isInstanceOf(RepositoryCorruptedException.class)
            .hasMessageContaining("forged or damaged");
        BlobName n =
            new BlobName(BlobType.PACK, String.format(java.util.Locale.ROOT, "%032x", ++k));
        store.save(n, file);
        assertThatThrownBy(() -> PackReader.loadTrailer(store, n))
            .isInstanceOf(RepositoryCorruptedException.class)
            .hasMessageContaining("pack " + n)
            .hasMessageContaining("forged or damaged");
      }
      // the genuine trailer, rewritten as it was, still reads
      BlobName n = new BlobName(BlobType.PACK, String.format(java.util.Locale.ROOT, "%032x", ++k));
      store.save(n, PackForgery.withTrailer(b.file(), e));
      assertThat(PackReader.loadTrailer(store, n)).isEqualTo(e);
    }
  }

  /** Packs as the writer makes them: empty, one record, empty and large records, many records. */
  @Test
  void genuinePacksOfEverySizeRead() throws Exception {
    LocalBlobStore store = new LocalBlobStore(tmp.resolve("g"));
    try (ChunkCompressor c = new ChunkCompressor(1)) {
      for (int n : new int[] {0, 1, 2, 7, 300}) {
        PackWriter w = new PackWriter(64);
        List<PackEntry> entries = new ArrayList<>();
        for (int i = 0; i < n; i++) {
          byte[] p = i % 3 == 0 ? random(1 + 997 * i, i) : text(3000 * i + 1);
          ChunkCompressor.Stored s = c.compress(p, 0, p.length);
          entries.add(w.add(hasher.hash(p, 0, p.length), s.bytes(), p.length, s.flags()));
        }
        if (n == 2) { // a record of 0 bytes
          entries.add(w.add(hasher.hash(new byte[0], 0, 0), new byte[0], 0, 0));
        }
        byte[] file = w.finish();
        assertThat(PackReader.parse(name, file)).isEqualTo(entries);
        BlobName p =
            new BlobName(BlobType.PACK, String.format(java.util.Locale.ROOT, "%032x", n + 1));
        store.save(p, file);
        assertThat(PackReader.loadTrailer(store, p)).isEqualTo(entries);
      }
    }
  }
}
