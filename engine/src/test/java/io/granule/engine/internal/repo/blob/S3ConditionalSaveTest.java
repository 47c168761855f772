package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code saveNew} on S3 is a conditional write ({@code If-None-Match: *}), so that two {@code
 * init}s of one prefix at once cannot both save a config (the first password then no longer opened
 * the repository). s3proxy ignores the header, so the request and the answers are checked against a
 * tiny HTTP endpoint: the header is sent, and 412 (the key exists) or 409 (a conflicting write in
 * progress) is {@link java.nio.file.FileAlreadyExistsException}.
 */
@Timeout(60)
class S3ConditionalSaveTest {
  private FakeS3Endpoint server;
  private final List<String> putHeaders = new CopyOnWriteArrayList<>();
  private volatile int putStatus = 200;

  @BeforeEach
  void start() throws IOException {
    server = new FakeS3Endpoint(this::serve);
  }

  @AfterEach
  void stop() throws Exception {
    server.close();
  }

  private static String line(InputStream in) throws IOException {
    StringBuilder b = new StringBuilder();
    int c;
    while ((c = in.read()) >= 0 && c != '\n') {
      if (c != '\r') {
        b.append((char) c);
      }
    }
    return c < 0 && b.length() == 0 ? null : b.toString();
  }

  private void serve(Socket s) throws IOException {
    InputStream in = s.getInputStream();
    OutputStream out = s.getOutputStream();
    String request = line(in);
    if (request == null) {
      return;
    }
    long length = 0;
    boolean expect = false;
    StringBuilder headers = new StringBuilder();
    for (String h = line(in); h != null && !h.isEmpty(); h = line(in)) {
      headers.append(h.toLowerCase(Locale.ROOT)).append('\n');
      if (h.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
        length = Long.parseLong(h.substring(h.indexOf(':') + 1).trim());
      }
      if (h.toLowerCase(Locale.ROOT).startsWith("expect:")) {
        expect = true;
      }
    }
    int status;
    if (request.startsWith("HEAD ")) {
      status = 404; // stat: not there
    } else if (request.startsWith("PUT ")) {
      putHeaders.add(headers.toString());
      status = putStatus;
      if (status == 200) {
        if (expect) {
          out.write("HTTP/1.1 100 Continue\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
          out.flush();
        }
        in.readNBytes((int) length);
      }
    } else {
      status = 400;
    }
    String body =
        status == 200 || status == 404
            ? ""
            : "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>"
                + (status == 412 ? "PreconditionFailed" : "ConditionalRequestConflict")
                + "</Code><Message>no</Message></Error>";
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    out.write(
        ("HTTP/1.1 "
                + status
                + " X\r\nETag: \"e\"\r\nContent-Type: application/xml\r\nContent-Length: "
                + (request.startsWith("HEAD ") ? 0 : b.length)
                + "\r\nConnection: close\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
    if (!request.startsWith("HEAD ")) {
      out.write(b);
    }
    out.flush();
  }

  private S3BlobStore store() {
    return server.store();
  }

  @Test
  void aNewBlobIsAConditionalWrite() throws Exception {
    S3BlobStore s = store();
    s.saveNew(BlobName.CONFIG, new byte[] {1, 2, 3});
    assertThat(putHeaders).hasSize(1);
    assertThat(putHeaders.get(0)).contains("if-none-match: *");
    s.save(new BlobName(BlobType.INDEX, "ab12"), new byte[] {4});
    assertThat(putHeaders.get(1)).as("a plain save").doesNotContain("if-none-match");
  }

  @Test
  void aKeyThatExistsOrIsBeingWrittenIsThere() {
    S3BlobStore s = store();
    for (int status : new int[] {412, 409}) {
      putStatus = status;
      assertThatThrownBy(() -> s.saveNew(BlobName.CONFIG, new byte[] {1}))
          .as("HTTP %d", status)
          .isInstanceOf(java.nio.file.FileAlreadyExistsException.class);
    }
  }
}
