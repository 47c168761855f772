package io.granule.engine.internal.repo.blob;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;

/**
 * A tiny HTTP endpoint on the loopback for S3 tests that need answers s3proxy does not give: each
 * connection is handed to {@code serve}, one at a time, and closed after it.
 */
final class FakeS3Endpoint implements AutoCloseable {
  /** Answers one connection (one request: the answers say {@code Connection: close}). */
  @FunctionalInterface
  interface Handler {
    void serve(Socket s) throws IOException;
  }

  private final ServerSocket server;
  private final Thread acceptor;

  FakeS3Endpoint(Handler handler) throws IOException {
    server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    acceptor =
        new Thread(
            () -> {
              while (!server.isClosed()) {
                try (Socket s = server.accept()) {
                  handler.serve(s);
                } catch (IOException e) {
                  // closed, or a client gone: next
                }
              }
            },
            "fake-s3");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  int port() {
    return server.getLocalPort();
  }

  /** A store of bucket {@code bkt}, prefix {@code repo}, at this endpoint. */
  S3BlobStore store() {
    return S3BlobStore.open(
        S3Location.parse("s3:http://127.0.0.1:" + port() + "/bkt/repo"),
        StaticCredentialsProvider.create(AwsBasicCredentials.create("a", "b")),
        5 << 20);
  }

  @Override
  public void close() throws Exception {
    server.close();
    acceptor.join(5000);
  }
}
