package io.granule.engine.internal.repo.blob;

import java.net.URI;
import java.net.URISyntaxException;

/**
 * Where an S3 repository lives, parsed from {@code s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]} (a
 * custom endpoint, addressed path-style: MinIO, Ceph, s3proxy, or AWS itself) or {@code
 * s3:BUCKET[/PREFIX]} (AWS, endpoint from the region).
 *
 * @param endpoint the endpoint, or null for AWS's own
 * @param bucket the bucket
 * @param prefix the key prefix, empty or ending with {@code /}
 */
public record S3Location(URI endpoint, String bucket, String prefix) {
  /** The scheme prefix of S3 repository locations. */
  public static final String SCHEME = "s3:";

  /** Whether {@code location} names an S3 repository. */
  public static boolean matches(String location) {
    return location.startsWith(SCHEME);
  }

  /**
   * Parses {@code s3:…}.
   *
   * @throws IllegalArgumentException if it is malformed, naming the expected forms
   */
  public static S3Location parse(String location) {
    if (!matches(location)) {
      throw invalid(location, "it does not start with 's3:'");
    }
    String rest = location.substring(SCHEME.length());
    URI endpoint = null;
    String path = rest;
    if (rest.startsWith("http://") || rest.startsWith("https://")) {
      URI u;
      try {
        u = new URI(rest);
      } catch (URISyntaxException e) {
        throw invalid(location, e.getMessage());
      }
      if (u.getHost() == null || u.getQuery() != null || u.getFragment() != null) {
        throw invalid(location, "the endpoint needs a host and no query");
      }
      endpoint = URI.create(u.getScheme() + "://" + u.getRawAuthority());
      path = u.getPath() == null ? "" : u.getPath();
    }
    while (path.startsWith("/")) {
      path = path.substring(1);
    }
    int slash = path.indexOf('/');
    String bucket = slash < 0 ? path : path.substring(0, slash);
    String prefix = slash < 0 ? "" : path.substring(slash + 1);
    while (prefix.endsWith("/")) {
      prefix = prefix.substring(0, prefix.length() - 1);
    }
    if (!bucket.matches("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")) {
      throw invalid(location, "'" + bucket + "' is not a valid bucket name");
    }
    return new S3Location(endpoint, bucket, prefix.isEmpty() ? "" : prefix + "/");
  }

  private static IllegalArgumentException invalid(String location, String why) {
    return new IllegalArgumentException(
        "invalid S3 repository '"
            + location
            + "': "
            + why
            + " (use s3:https://HOST[:PORT]/BUCKET/PREFIX or s3:BUCKET/PREFIX)");
  }

  @Override
  public String toString() {
    return SCHEME
        + (endpoint == null ? "" : endpoint + "/")
        + bucket
        + (prefix.isEmpty() ? "" : "/" + prefix.substring(0, prefix.length() - 1));
  }

  /**
   * This location spelled one way whatever way it was given (for remembering a repository by its
   * place, {@code ConfigPin}): scheme and host lowercase, the scheme's default port explicit, any
   * name or address of this host's loopback as {@code loopback}, AWS's own endpoints (none given,
   * {@code s3.amazonaws.com}, {@code s3.REGION.amazonaws.com}) as {@code aws}.
   */
  public String place() {
    String ep;
    String host = endpoint == null ? null : endpoint.getHost().toLowerCase(java.util.Locale.ROOT);
    if (host == null || host.matches("s3([.-][a-z0-9-]+)?\\.amazonaws\\.com")) {
      ep = "aws";
    } else {
      String scheme = endpoint.getScheme().toLowerCase(java.util.Locale.ROOT);
      int port = endpoint.getPort();
      if (port < 0) {
        port = "https".equals(scheme) ? 443 : 80;
      }
      ep = scheme + "://" + (loopback(host) ? "loopback" : host) + ":" + port;
    }
    return SCHEME + ep + "/" + bucket + "/" + prefix;
  }

  /** Whether {@code host} names this host's loopback: localhost, 127.0.0.0/8, ::1. */
  private static boolean loopback(String host) {
    if (host.equals("localhost") || host.endsWith(".localhost")) {
      return true;
    }
    String h =
        host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    if (!h.matches("[0-9.]+") && !h.contains(":")) {
      return false; // a name: not resolved (no lookup for a place)
    }
    try {
      return java.net.InetAddress.getByName(h).isLoopbackAddress(); // a literal: no lookup
    } catch (java.net.UnknownHostException e) {
      return false;
    }
  }
}
