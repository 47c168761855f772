package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * A real S3 server for tests: s3proxy (copied to {@code target/s3proxy/s3proxy.jar} by the build)
 * run as its own {@code java -jar} process on a free loopback port, storing into a directory,
 * checking AWS v2/v4 signatures. Missing, it skips the test; under CI it fails it.
 */
public final class S3Proxy implements AutoCloseable {
  public static final String ACCESS = "granule-access";
  public static final String SECRET = "granule-secret";
  public static final String BUCKET = "granule-test";

  private final Process process;
  private final int port;

  private S3Proxy(Process process, int port) {
    this.process = process;
    this.port = port;
  }

  /** Starts s3proxy storing in {@code dir}, with bucket {@link #BUCKET}. */
  public static S3Proxy start(Path dir) throws Exception {
    Path jar = Path.of(System.getProperty("granule.s3proxy.jar", "target/s3proxy/s3proxy.jar"));
    if (!Files.isRegularFile(jar)) {
      String why = "s3proxy is missing at " + jar.toAbsolutePath() + ": run the Maven build";
      if ("true".equals(System.getenv("CI"))) {
        throw new AssertionError(why);
      }
      Assumptions.assumeTrue(false, why);
    }
    int port;
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    Path data = Files.createDirectories(dir.resolve("s3data"));
    Path props = dir.resolve("s3proxy.properties");
    Files.writeString(
        props,
        String.join(
            "\n",
            "s3proxy.endpoint=http://127.0.0.1:" + port,
            "s3proxy.authorization=aws-v2-or-v4",
            "s3proxy.identity=" + ACCESS,
            "s3proxy.credential=" + SECRET,
            "jclouds.provider=" + System.getProperty("granule.s3proxy.provider", "filesystem-nio2"),
            "jclouds.identity=" + ACCESS,
            "jclouds.credential=" + SECRET,
            "jclouds.filesystem.basedir=" + data,
            ""),
        StandardCharsets.UTF_8);
    Process p =
        new ProcessBuilder(
                List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m",
                    "-jar",
                    jar.toAbsolutePath().toString(),
                    "--properties",
                    props.toString()))
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve("s3proxy.log").toFile())
            .start();
    S3Proxy proxy = new S3Proxy(p, port);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (true) {
      if (!p.isAlive()) {
        throw new AssertionError(
            "s3proxy exited with "
                + p.exitValue()
                + ": "
                + Files.readString(dir.resolve("s3proxy.log"), StandardCharsets.UTF_8));
      }
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 500);
        break;
      } catch (IOException e) {
        if (System.nanoTime() > deadline) {
          proxy.close();
          throw new AssertionError("s3proxy did not listen on port " + port + " within 60 s", e);
        }
        Thread.sleep(100);
      }
    }
    try (S3Client c = proxy.client()) {
      c.createBucket(r -> r.bucket(BUCKET));
    }
    return proxy;
  }

  /** {@code http://127.0.0.1:PORT}. */
  public String endpoint() {
    return "http://127.0.0.1:" + port;
  }

  /** The credentials s3proxy accepts. */
  public static StaticCredentialsProvider credentials() {
    return StaticCredentialsProvider.create(AwsBasicCredentials.create(ACCESS, SECRET));
  }

  /** A plain SDK client, for setting up and inspecting. */
  public S3Client client() {
    return S3Client.builder()
        .endpointOverride(URI.create(endpoint()))
        .forcePathStyle(true)
        .region(Region.US_EAST_1)
        .credentialsProvider(credentials())
        .httpClient(
            software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient.builder().build())
        .build();
  }

  /** A store under {@code prefix} of the test bucket, with 5 MiB parts. */
  public S3BlobStore store(String prefix) {
    return S3BlobStore.open(
        S3Location.parse("s3:" + endpoint() + "/" + BUCKET + "/" + prefix), credentials(), 5 << 20);
  }

  @Override
  public void close() throws InterruptedException {
    process.destroy();
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      process.destroyForcibly();
    }
  }
}
