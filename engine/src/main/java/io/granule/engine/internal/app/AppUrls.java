package io.granule.engine.internal.app;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;

/** Application connection URLs: parsing, and the form without secrets that is stored and shown. */
public final class AppUrls {
  private AppUrls() {}

  /**
   * Parses {@code scheme://[user@]host[:port][/path][?query]}.
   *
   * @throws IllegalArgumentException naming the URL (without its password) and the expected form
   */
  public static URI parse(String text) {
    URI u;
    try {
      u = new URI(text);
    } catch (URISyntaxException e) {
      throw new IllegalArgumentException(
          "invalid application URL '"
              + redact(text)
              + "': use SCHEME://USER@HOST:PORT/DATABASE, e.g. postgres://backup@db1:5432/shop",
          e);
    }
    if (u.getScheme() == null || u.getHost() == null) {
      throw new IllegalArgumentException(
          "invalid application URL '"
              + redact(text)
              + "': use SCHEME://USER@HOST:PORT/DATABASE, e.g. postgres://backup@db1:5432/shop");
    }
    return u;
  }

  /** {@code url} without a password in its user info or a {@code password=} query parameter. */
  public static String redact(URI url) {
    return redact(url.toString());
  }

  /** {@link #redact(URI)} for text that may not even parse. */
  public static String redact(String url) {
    String s = url.replaceAll("(?<=://)([^:/@]*):[^@/]*@", "$1@");
    StringBuilder out = new StringBuilder();
    int q = s.indexOf('?');
    if (q < 0) {
      return s;
    }
    out.append(s, 0, q + 1);
    String[] params = s.substring(q + 1).split("&", -1);
    for (int i = 0; i < params.length; i++) {
      String p = params[i];
      String key = p.contains("=") ? p.substring(0, p.indexOf('=')) : p;
      String k = key.toLowerCase(Locale.ROOT);
      out.append(i == 0 ? "" : "&")
          .append(k.equals("password") || k.equals("pwd") ? key + "=***" : p);
    }
    return out.toString();
  }
}
