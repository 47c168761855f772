package io.granule.benchmarks;

import io.granule.engine.internal.repo.crypto.NativeCrypto;

/** Prints which implementations the hash benchmarks measure, for bench/jmh.sh's results. */
public final class Implementations {
  private Implementations() {}

  public static void main(String[] args) {
    System.out.println(
        "SHA-256 by " + NativeCrypto.describe() + ", BLAKE3 by " + NativeCrypto.describeBlake3());
  }
}
