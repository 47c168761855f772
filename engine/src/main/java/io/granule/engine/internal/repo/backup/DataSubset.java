package io.granule.engine.internal.repo.backup;

import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which packs verify reads whole (their chunks read, decrypted, decompressed and hashed), when
 * reading all of them at once costs too much (a large repository, or one on S3 where every byte
 * read is paid for): none, all, group {@code n} of {@code t} (the same packs every time, so that
 * {@code 1/7} … {@code 7/7} over a week read every pack once, new ones included), a random share of
 * them ({@code 5%}), or random packs up to a number of bytes ({@code 2G}).
 *
 * <p>Groups are by pack id (random names, so the groups are about equal): a pack is in group {@code
 * 1 + (hi mod t)} of its id's first 64 bits, unsigned. A pack whose name is not a pack id is in
 * every group (verify names it damaged whatever it reads).
 */
public abstract sealed class DataSubset {
  /** No pack's data: the structure only. */
  public static final DataSubset NONE = new None();

  /** Every pack's data ({@code --read-data}). */
  public static final DataSubset ALL = new All();

  private static final long MAX_GROUPS = 1_000_000;
  private static final Pattern GROUP = Pattern.compile("(\\d{1,7})/(\\d{1,7})");
  private static final Pattern PERCENT = Pattern.compile("(\\d{1,3}(?:\\.\\d{1,6})?)%");
  private static final Pattern SIZE =
      Pattern.compile("(\\d{1,15})\\s*([KMGT]?)(?:I?B)?", Pattern.CASE_INSENSITIVE);

  private DataSubset() {}

  /**
   * Parses {@code n/t} (1 ≤ n ≤ t ≤ 1 000 000), {@code P%} (0 < P ≤ 100) or a size in bytes with an
   * optional K, M, G or T suffix (powers of 1024).
   *
   * @throws IllegalArgumentException naming the value and the forms it may take
   */
  public static DataSubset parse(String value) {
    String v = value.trim();
    Matcher m = GROUP.matcher(v);
    if (m.matches()) {
      long n = Long.parseLong(m.group(1));
      long t = Long.parseLong(m.group(2));
      if (t < 1 || t > MAX_GROUPS || n < 1 || n > t) {
        throw new IllegalArgumentException(
            "'" + value + "': group N of T needs 1 <= N <= T <= " + MAX_GROUPS + ", e.g. 1/7");
      }
      return new Group((int) n, (int) t);
    }
    m = PERCENT.matcher(v);
    if (m.matches()) {
      double p = Double.parseDouble(m.group(1));
      if (!(p > 0) || p > 100) {
        throw new IllegalArgumentException(
            "'" + value + "': a share of the packs is more than 0% and at most 100%, e.g. 5%");
      }
      return new Share(p);
    }
    m = SIZE.matcher(v);
    if (m.matches()) {
      int shift =
          switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "K" -> 10;
            case "M" -> 20;
            case "G" -> 30;
            case "T" -> 40;
            default -> 0;
          };
      long n = Long.parseLong(m.group(1));
      if (n <= 0 || n > (Long.MAX_VALUE >> shift)) {
        throw new IllegalArgumentException(
            "'" + value + "': a size of data to read is more than 0 bytes, e.g. 10G");
      }
      return new Bytes(n << shift);
    }
    throw new IllegalArgumentException(
        "'"
            + value
            + "' is not a subset of the data: give a group N/T (1/7: the same packs each time),"
            + " a share P% (5%: random packs) or a size (10G: random packs up to that many bytes)");
  }

  /**
   * What {@code --read-data} ({@code all}) and {@code --read-data-subset} ({@code subset}, or null)
   * ask for together, as options named {@code allName} and {@code subsetName} in messages.
   *
   * @throws IllegalArgumentException if both are given, or the subset is not one
   */
  public static DataSubset of(boolean all, String subset, String allName, String subsetName) {
    if (subset == null) {
      return all ? ALL : NONE;
    }
    if (all) {
      throw new IllegalArgumentException(
          "give " + allName + " (every pack) or " + subsetName + " " + subset + ", not both");
    }
    try {
      return parse(subset);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(subsetName + " " + e.getMessage(), e);
    }
  }

  /** The packs of {@code packs} whose data to read; {@code random} picks the random subsets. */
  public abstract Set<BlobName> select(List<BlobInfo> packs, Random random);

  /** Whether every pack is read. */
  public boolean all() {
    return false;
  }

  /** What was asked for, as given ({@code 1/7}, {@code 5%}, {@code 10G}, "all" or "none"). */
  @Override
  public abstract String toString();

  private static final class None extends DataSubset {
    @Override
    public Set<BlobName> select(List<BlobInfo> packs, Random random) {
      return Set.of();
    }

    @Override
    public String toString() {
      return "none";
    }
  }

  private static final class All extends DataSubset {
    @Override
    public Set<BlobName> select(List<BlobInfo> packs, Random random) {
      Set<BlobName> out = new HashSet<>(packs.size() * 2);
      packs.forEach(p -> out.add(p.name()));
      return out;
    }

    @Override
    public boolean all() {
      return true;
    }

    @Override
    public String toString() {
      return "all";
    }
  }

  /** Group {@code n} of {@code t}, by pack id. */
  static final class Group extends DataSubset {
    final int n;
    final int t;

    Group(int n, int t) {
      this.n = n;
      this.t = t;
    }

    @Override
    public Set<BlobName> select(List<BlobInfo> packs, Random random) {
      Set<BlobName> out = new HashSet<>();
      for (BlobInfo p : packs) {
        int g = groupOf(p.name(), t);
        if (g == 0 || g == n) {
          out.add(p.name());
        }
      }
      return out;
    }

    @Override
    public boolean all() {
      return t == 1;
    }

    @Override
    public String toString() {
      return n + "/" + t;
    }
  }

  /**
   * The packs named {@code names} (blob names without {@code data/}), as {@code granule repair
   * --pack} gives them: only those that are in the repository are read.
   */
  public static DataSubset packs(Set<String> names) {
    return new Named(names);
  }

  /** The packs of given names. */
  static final class Named extends DataSubset {
    final Set<String> names;

    Named(Set<String> names) {
      this.names = Set.copyOf(names);
    }

    @Override
    public Set<BlobName> select(List<BlobInfo> packs, Random random) {
      Set<BlobName> out = new HashSet<>();
      for (BlobInfo p : packs) {
        if (names.contains(p.name().name())) {
          out.add(p.name());
        }
      }
      return out;
    }

    @Override
    public String toString() {
      return "packs " + String.join(", ", new java.util.TreeSet<>(names));
    }
  }

  /** The group, 1 to {@code t}, of pack {@code name}; 0 (every group) if it is not a pack id. */
  static int groupOf(BlobName name, int t) {
    PackId id;
    try {
      id = PackId.parse(name.name());
    } catch (IllegalArgumentException e) {
      return 0;
    }
    return 1 + (int) Long.remainderUnsigned(id.hi(), t);
  }

  private static List<BlobInfo> shuffled(List<BlobInfo> packs, Random random) {
    List<BlobInfo> out = new ArrayList<>(packs);
    Collections.shuffle(out, random);
    return out;
  }

  /** A share of the packs, picked at random. */
  static final class Share extends DataSubset {
    final double percent;

    Share(double percent) {
      this.percent = percent;
    }

    @Override
    public Set<BlobName> select(List<BlobInfo> packs, Random random) {
      int k = (int) Math.min(packs.size(), Math.ceil(packs.size() * percent / 100));
      List<BlobInfo> shuffled = shuffled(packs, random);
      Set<BlobName> out = new HashSet<>(k * 2);
      for (int i = 0; i < k; i++) {
        out.add(shuffled.get(i).name());
      }
      return out;
    }

    @Override
    public boolean all() {
      return percent >= 100;
    }

    @Override
    public String toString() {
      String s = String.format(Locale.ROOT, "%.6f", percent).replaceAll("\\.?0+$", "");
      return s + "%";
    }
  }

  /**
   * Random packs whose sizes add up to at most {@code bytes} (packs that would go over it are
   * passed over), and at least one pack.
   */
  static final class Bytes extends DataSubset {
    final long bytes;

    Bytes(long bytes) {
      this.bytes = bytes;
    }

    @Override
    public Set<BlobName> select(List<BlobInfo> packs, Random random) {
      List<BlobInfo> shuffled = shuffled(packs, random);
      Set<BlobName> out = new HashSet<>();
      long total = 0;
      for (BlobInfo p : shuffled) {
        if (p.size() <= bytes - total) {
          out.add(p.name());
          total += p.size();
        }
      }
      if (out.isEmpty() && !shuffled.isEmpty()) {
        out.add(shuffled.get(0).name()); // every pack is larger: one of them
      }
      return out;
    }

    @Override
    public String toString() {
      String units = "KMGT";
      for (int u = units.length() - 1; u >= 0; u--) {
        int shift = 10 * (u + 1);
        if (bytes >= (1L << shift) && (bytes & ((1L << shift) - 1)) == 0) {
          return (bytes >> shift) + units.substring(u, u + 1);
        }
      }
      return Long.toString(bytes);
    }
  }
}
