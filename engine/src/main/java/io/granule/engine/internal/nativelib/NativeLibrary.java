package io.granule.engine.internal.nativelib;

import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Loads the engine's small JNI library {@code libgranule-native} (source: {@code
 * engine/src/main/c}) once: OpenSSL's hashes and ciphers ({@code NativeCrypto}) and the
 * file-system, lock and socket calls the JDK lacks ({@code SparseFiles}, {@code DirectoryHandle},
 * {@code SafePath}, {@code PosixAcl}, {@code OfdLock}, {@code PeerUser}, {@code LocalBlobStore}'s
 * statx, ...).
 *
 * <p>In the OSGi runtime the engine bundle carries the library ({@code Bundle-NativeCode}); outside
 * it it is loaded from the build output (the engine's unit tests) or copied out of the engine jar
 * to a temporary file (plugins' unit tests). Where it cannot be loaded (another OS or CPU), each
 * user falls back to what the JDK offers.
 */
public final class NativeLibrary {
  /** The library's name for {@link System#loadLibrary}. */
  public static final String NAME = "granule-native";

  private static final String RESOURCE = "/native/linux-x86_64/libgranule-native.so";
  private static final String REASON = load();

  private NativeLibrary() {}

  /** Null if the library is loaded, else why it is not. */
  public static String unavailableReason() {
    return REASON;
  }

  /** Copies the library out of a jar into a temporary file, deleted when the JVM exits. */
  private static Path extract(URL url) throws IOException {
    Path f = Files.createTempFile("lib" + NAME + "-", ".so");
    f.toFile().deleteOnExit();
    try (InputStream in = url.openStream()) {
      Files.copy(in, f, StandardCopyOption.REPLACE_EXISTING);
    }
    return f;
  }

  private static String load() {
    if (!System.getProperty("os.name", "").equals("Linux")
        || !System.getProperty("os.arch", "").equals("amd64")) {
      return "no native library for "
          + System.getProperty("os.name")
          + " "
          + System.getProperty("os.arch");
    }
    try {
      try {
        System.loadLibrary(NAME); // the bundle's Bundle-NativeCode
      } catch (UnsatisfiedLinkError e) {
        URL url = NativeLibrary.class.getResource(RESOURCE);
        if (url == null) {
          return "lib" + NAME + ".so not found: " + e.getMessage();
        }
        if ("file".equals(url.getProtocol())) {
          System.load(Path.of(url.toURI()).toString()); // the build output, outside OSGi
        } else {
          System.load(
              extract(url).toString()); // the engine jar on a plain class path (plugins' tests)
        }
      }
      return null;
    } catch (UnsatisfiedLinkError | URISyntaxException | SecurityException | IOException e) {
      return e.toString();
    }
  }
}
