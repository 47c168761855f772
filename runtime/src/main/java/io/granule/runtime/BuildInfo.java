package io.granule.runtime;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/** Versions recorded by the build in {@code granule-runtime.properties}. */
final class BuildInfo {
  private static final Properties PROPS = load();

  private BuildInfo() {}

  static String get(String key) {
    String v = PROPS.getProperty(key);
    if (v == null) {
      throw new IllegalStateException("granule-runtime.properties lacks " + key + ": rebuild");
    }
    return v;
  }

  private static Properties load() {
    Properties p = new Properties();
    try (InputStream in = BuildInfo.class.getResourceAsStream("/granule-runtime.properties")) {
      if (in != null) {
        p.load(in);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return p;
  }
}
