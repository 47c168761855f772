package io.granule.benchmarks;

import io.granule.engine.internal.repo.ChunkHasher;
import io.granule.engine.internal.repo.ChunkId;
import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.chunk.FastCdcChunker;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.index.ChunkLocation;
import io.granule.engine.internal.repo.pack.ChunkCompressor;
import io.granule.engine.internal.repo.pack.PackWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The repository's hot paths, one 1 MiB chunk (or 64 MiB stream) per operation unless stated:
 * throughput in operations per second, so MB/s = ops/s for the 1 MiB benchmarks.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class RepositoryBenchmarks {

  /** Data shared by the benchmarks: random and text-like chunks. */
  @State(Scope.Thread)
  public static class Data {
    @Param({"1048576"})
    public int chunkSize;

    byte[] random;
    byte[] text;
    byte[] stream;
    ChunkHasher hasher;
    ChunkHasher blake3;
    ChunkHasher blake3Keyed;
    ChunkCompressor compressor;

    @Setup
    public void setUp() {
      Random rnd = new Random(1);
      random = new byte[chunkSize];
      rnd.nextBytes(random);
      text = new byte[chunkSize];
      byte[] words =
          "the quick brown fox jumps over the lazy dog; granule backs up blocks "
              .getBytes(StandardCharsets.US_ASCII);
      for (int i = 0; i < text.length; i++) {
        text[i] = words[(i + (i >>> 10)) % words.length];
      }
      stream = new byte[64 << 20];
      rnd.nextBytes(stream);
      hasher = ChunkHasher.sha256();
      blake3 = ChunkHasher.blake3(null);
      blake3Keyed = ChunkHasher.blake3(new byte[32]);
      compressor = new ChunkCompressor(1);
    }

    @TearDown
    public void tearDown() {
      compressor.close();
    }
  }

  @Benchmark
  public ChunkId sha256OfChunk(Data d) {
    return d.hasher.hash(d.random, 0, d.random.length);
  }

  /** The default chunk id since format 3 (unencrypted repositories). */
  @Benchmark
  public ChunkId blake3OfChunk(Data d) {
    return d.blake3.hash(d.random, 0, d.random.length);
  }

  /** The default chunk id of an encrypted repository since format 3. */
  @Benchmark
  public ChunkId blake3KeyedOfChunk(Data d) {
    return d.blake3Keyed.hash(d.random, 0, d.random.length);
  }

  @Benchmark
  public Object zstdCompressibleChunk(Data d) {
    return d.compressor.compress(d.text, 0, d.text.length);
  }

  @Benchmark
  public Object zstdIncompressibleChunk(Data d) {
    return d.compressor.compress(d.random, 0, d.random.length);
  }

  /** FastCDC over a 64 MiB stream: MB/s = 64 × ops/s. */
  @Benchmark
  public void fastCdc64MiB(Data d, Blackhole bh) {
    FastCdcChunker c = new FastCdcChunker();
    c.update(d.stream, 0, d.stream.length, bh::consume);
    c.finish(bh::consume);
  }

  /** Assembles a 16 MiB pack of 16 chunks: MB/s = 16 × ops/s. */
  @Benchmark
  public byte[] packWriter16MiB(Data d) {
    PackWriter w = new PackWriter(17 << 20);
    for (int i = 0; i < 16; i++) {
      ChunkId id =
          ChunkId.of(
              new byte[] {
                (byte) i, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                22, 23, 24, 25, 26, 27, 28, 29, 30, 31
              },
              0);
      w.add(id, d.random, d.random.length, 0);
    }
    return w.finish();
  }

  /** A chunk index holding one million chunks, probed with hits and misses. */
  @State(Scope.Benchmark)
  public static class Index {
    static final int N = 1_000_000;
    Path dir;
    ChunkIndex index;
    ChunkId[] present;
    ChunkId[] absent;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
      dir = Files.createTempDirectory("granule-jmh-index");
      index = new ChunkIndex(dir, N);
      Random rnd = new Random(2);
      present = new ChunkId[N];
      absent = new ChunkId[4096];
      byte[] b = new byte[32];
      PackId pack = PackId.random();
      for (int i = 0; i < N; i++) {
        rnd.nextBytes(b);
        present[i] = ChunkId.of(b, 0);
        index.put(present[i], new ChunkLocation(pack, i * 1024L, 1000, 1 << 20, 0));
      }
      for (int i = 0; i < absent.length; i++) {
        rnd.nextBytes(b);
        absent[i] = ChunkId.of(b, 0);
      }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
      index.close();
      try (Stream<Path> s = Files.walk(dir)) {
        for (Path p : s.sorted((a, b) -> b.compareTo(a)).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }

  /** 4096 lookups of present ids per operation. */
  @Benchmark
  @OperationsPerInvocation(4096)
  public void indexLookupHit(Index ix, Blackhole bh) {
    for (int i = 0; i < 4096; i++) {
      bh.consume(ix.index.get(ix.present[(i * 7919) % Index.N]));
    }
  }

  /** 4096 lookups of absent ids per operation (what a backup of new data does). */
  @Benchmark
  @OperationsPerInvocation(4096)
  public void indexLookupMiss(Index ix, Blackhole bh) {
    for (int i = 0; i < 4096; i++) {
      bh.consume(ix.index.contains(ix.absent[i]));
    }
  }
}
