package io.granule.engine.internal.repo.store;

import io.granule.engine.internal.repo.RepositoryCorruptedException;
import io.granule.engine.internal.repo.blob.BlobCodec;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobStore;
import io.granule.engine.internal.repo.index.ChunkIndex;
import io.granule.engine.internal.repo.pack.PackEntry;
import io.granule.engine.internal.repo.pack.PackFormat;
import io.granule.engine.internal.repo.pack.PackReader;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.function.BiConsumer;

/**
 * Checks of packs that no index blob lists, before anything trusts their trailers: a backup
 * adopting them, prune using them for live chunks found in no index blob. The trailer of an
 * encrypted repository's pack is neither encrypted nor authenticated (the storage sees the keyed
 * chunk ids in it and can copy them into a pack of its own); its records are. So a record is used
 * only once it is decoded through the codec (authenticated with the pack's name where encrypted),
 * decompressed and hashed to the id its entry gives. Without this a forged pack of copied ids would
 * be indexed under an authenticated index blob (audit9 M1, audit10 M3).
 */
public final class UnlistedPacks {
  /** The most bytes read at once to check records (or one record, if larger). */
  static final int WINDOW = 16 << 20;

  private UnlistedPacks() {}

  /**
   * The largest file a pack of a repository of pack size {@code packSize} can be: a backup closes a
   * pack once its records and trailer reach the pack size, so the last record (at most a whole
   * chunk, encoded) and its entry come on top, with header and footer. No bound ({@link
   * Long#MAX_VALUE}) for a codec that cannot tell its output's size.
   */
  public static long maxPackBytes(int packSize, BlobCodec codec) {
    if (codec.encodedLength(ChunkIndex.MAX_RAW_LENGTH) < 0) {
      return Long.MAX_VALUE;
    }
    return (long) packSize
        + codec.encodedLength(ChunkIndex.MAX_RAW_LENGTH)
        + PackFormat.ENTRY_SIZE
        + PackFormat.HEADER_SIZE
        + PackFormat.FOOTER_SIZE;
  }

  /**
   * The most bytes {@code codec} stores of a chunk of {@code rawLength} bytes; no bound if unknown.
   */
  private static long mostStored(BlobCodec codec, int rawLength) {
    int most = codec.encodedLength(rawLength);
    return most < 0 ? Long.MAX_VALUE : most;
  }

  /**
   * The trailer of pack {@code p}, which {@code info} describes, read alone (two range loads) once
   * its size is at most {@code maxBytes}, each entry's lengths possible for the codec. Nothing in
   * it is authenticated yet: see {@link #checkRecords}.
   *
   * @throws RepositoryCorruptedException naming the pack and what is wrong with it
   */
  public static List<PackEntry> trailer(
      BlobStore store, BlobCodec codec, BlobName p, BlobInfo info, long maxBytes)
      throws IOException {
    if (info.size() > maxBytes) {
      throw new RepositoryCorruptedException(
          "pack "
              + p
              + ": "
              + info.size()
              + " bytes, more than a pack of this repository can have ("
              + maxBytes
              + ") (run 'granule verify' to list the damage)");
    }
    List<PackEntry> entries = PackReader.loadTrailer(store, p, info);
    for (PackEntry e : entries) {
      if (e.rawLength() < 0
          || e.rawLength() > ChunkIndex.MAX_RAW_LENGTH
          || e.storedLength() > mostStored(codec, e.rawLength())) {
        throw new RepositoryCorruptedException(
            "pack "
                + p
                + " chunk "
                + e.id()
                + ": impossible lengths: stored="
                + e.storedLength()
                + " plaintext="
                + e.rawLength()
                + " (run 'granule verify' to list the damage)");
      }
    }
    return entries;
  }

  /**
   * Checks the records of {@code entries} (entries of {@code p}'s trailer, all or some) as {@code
   * verify --read-data} does: read in windows of at most {@link #WINDOW} bytes (or one record),
   * each record's CRC checked, decoded through {@code reader}'s codec (authenticated with the
   * pack's name where encrypted), decompressed and hashed to its id. Returns the entries whose
   * records passed, in the order of {@code entries}.
   *
   * @param bad told of each record that failed, which is then left out; {@code null}: the first
   *     failure is thrown
   * @throws RepositoryCorruptedException the first record that failed, if {@code bad} is null
   * @throws IOException if the store fails to read a window
   */
  public static List<PackEntry> checkRecords(
      BlobStore store,
      BlobName p,
      List<PackEntry> entries,
      ChunkReader reader,
      BiConsumer<PackEntry, RepositoryCorruptedException> bad)
      throws IOException {
    List<PackEntry> byOffset =
        entries.stream().sorted(Comparator.comparingLong(PackEntry::offset)).toList();
    // Each record is read and decoded once: entries that overlap (or repeat one record) are
    // refused as a whole, so the bytes checked are at most the pack's. PackReader refuses such a
    // trailer already; this holds for any list handed in (audit12 M1).
    long end0 = 0;
    for (PackEntry e : byOffset) {
      if (e.offset() < end0 || e.storedLength() < 0) {
        throw new RepositoryCorruptedException(
            "pack "
                + p
                + " chunk "
                + e.id()
                + ": its record at offset "
                + e.offset()
                + " overlaps another entry's, which ends at "
                + end0
                + " (a forged or damaged trailer; run 'granule verify' to list the damage)");
      }
      end0 = e.offset() + e.storedLength();
    }
    java.util.Set<PackEntry> good = new java.util.HashSet<>();
    for (int i = 0; i < byOffset.size(); ) {
      long start = byOffset.get(i).offset();
      long end = start + byOffset.get(i).storedLength();
      int j = i + 1;
      while (j < byOffset.size()) {
        PackEntry next = byOffset.get(j);
        long nextEnd = Math.max(end, next.offset() + next.storedLength());
        if (nextEnd - start > WINDOW) {
          break;
        }
        end = nextEnd;
        j++;
      }
      byte[] window = store.load(p, start, Math.toIntExact(end - start));
      for (int k = i; k < j; k++) {
        PackEntry e = byOffset.get(k);
        int off = (int) (e.offset() - start);
        try {
          PackReader.checkRecord(p, e, window, off);
          reader.decode(
              e.id(),
              p,
              Arrays.copyOfRange(window, off, off + e.storedLength()),
              e.flags(),
              e.rawLength());
          good.add(e);
        } catch (RepositoryCorruptedException ex) {
          if (bad == null) {
            throw ex;
          }
          bad.accept(e, ex);
        }
      }
      i = j;
    }
    List<PackEntry> out = new ArrayList<>(good.size());
    for (PackEntry e : entries) {
      if (good.contains(e)) {
        out.add(e);
      }
    }
    return out;
  }
}
