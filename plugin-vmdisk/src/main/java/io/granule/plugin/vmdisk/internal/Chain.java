package io.granule.plugin.vmdisk.internal;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The images opened so far along one backing chain, top first, to refuse cycles and chains deeper
 * than {@link #MAX_DEPTH}. Immutable.
 */
record Chain(List<Path> paths, List<Path> realPaths) {
  /** The deepest backing chain any reader follows, the top image included. */
  static final int MAX_DEPTH = 32;

  static Chain empty() {
    return new Chain(List.of(), List.of());
  }

  /**
   * The chain with {@code path} appended.
   *
   * @param file the image that names {@code path} as its backing file, for the message; null for
   *     the top image
   */
  Chain enter(Path path, ImageFile file) throws IOException {
    Path real;
    try {
      real = path.toRealPath();
    } catch (IOException e) {
      String msg = "backing file '" + path + "' cannot be opened: " + e;
      // the cause kept: a root backup tells a file its user may not read from one that is missing
      throw file == null
          ? new IOException("unable to open disk image '" + path + "': no such file", e)
          : (IOException) file.openError(msg).initCause(e);
    }
    if (realPaths.contains(real)) {
      String cycle =
          paths.stream().map(Path::toString).collect(Collectors.joining(" -> ")) + " -> " + path;
      throw file.openError("backing chain is cyclic: " + cycle);
    }
    if (paths.size() >= MAX_DEPTH) {
      throw file.openError("backing chain is deeper than " + MAX_DEPTH + " images");
    }
    List<Path> p = new ArrayList<>(paths);
    p.add(path);
    List<Path> r = new ArrayList<>(realPaths);
    r.add(real);
    return new Chain(List.copyOf(p), List.copyOf(r));
  }
}
