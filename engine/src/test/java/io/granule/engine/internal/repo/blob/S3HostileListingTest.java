package io.granule.engine.internal.repo.blob;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A hostile S3 endpoint's listings (audit10 M5): an endless pagination with a repeated token, a
 * truncated page without a token, endless new tokens, endless new keys, and keys outside the
 * prefix. Each ends with an error naming bucket and prefix, or (keys outside the prefix) with those
 * keys skipped; none hangs or crashes. The endpoint is a tiny HTTP server answering ListObjectsV2
 * with crafted XML.
 */
@Timeout(60)
class S3HostileListingTest {
  private FakeS3Endpoint server;
  private final AtomicInteger requests = new AtomicInteger();

  /** The page for (prefix, continuation token or null): {truncated, next token, keys...}. */
  private volatile BiFunction<String, String, String[]> pages;

  @BeforeEach
  void start() throws IOException {
    server = new FakeS3Endpoint(this::serve);
  }

  @AfterEach
  void stop() throws Exception {
    server.close();
  }

  private void serve(Socket s) throws IOException {
    BufferedReader in =
        new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.ISO_8859_1));
    String line = in.readLine();
    if (line == null) {
      return;
    }
    while (true) {
      String h = in.readLine();
      if (h == null || h.isEmpty()) {
        break;
      }
    }
    requests.incrementAndGet();
    String target = line.split(" ")[1];
    Map<String, String> q = new HashMap<>();
    int qm = target.indexOf('?');
    if (qm >= 0) {
      for (String kv : target.substring(qm + 1).split("&")) {
        int eq = kv.indexOf('=');
        String k = eq < 0 ? kv : kv.substring(0, eq);
        String v = eq < 0 ? "" : URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8);
        q.put(k, v);
      }
    }
    String[] page = pages.apply(q.getOrDefault("prefix", ""), q.get("continuation-token"));
    StringBuilder x = new StringBuilder();
    x.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .append("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">")
        .append("<Name>bkt</Name><MaxKeys>1000</MaxKeys><IsTruncated>")
        .append(page[0])
        .append("</IsTruncated>");
    if (page[1] != null) {
      x.append("<NextContinuationToken>").append(page[1]).append("</NextContinuationToken>");
    }
    for (int i = 2; i < page.length; i++) {
      x.append("<Contents><Key>")
          .append(page[i])
          .append("</Key><Size>100</Size>")
          .append("<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"x\"</ETag>")
          .append("</Contents>");
    }
    x.append("</ListBucketResult>");
    byte[] body = x.toString().getBytes(StandardCharsets.UTF_8);
    OutputStream out = s.getOutputStream();
    out.write(
        ("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: "
                + body.length
                + "\r\nConnection: close\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
    out.write(body);
    out.flush();
  }

  private S3BlobStore store() {
    return server.store();
  }

  private static String hex(int i) {
    return String.format(java.util.Locale.ROOT, "%064x", i);
  }

  @Test
  void aRepeatedContinuationTokenIsAnErrorNotAnEndlessLoop() {
    pages = (prefix, token) -> new String[] {"true", "tok"};
    assertThatThrownBy(() -> store().list(BlobType.SNAPSHOT))
        .isInstanceOf(IOException.class)
        .isNotInstanceOf(TransientBlobStoreException.class)
        .hasMessageContaining("bucket 'bkt' prefix 'repo/snapshots/'")
        .hasMessageContaining("continuation token it gave before");
    assertThat(requests.get()).isEqualTo(2);
  }

  @Test
  void newKeysUnderTheSameTokenOnEveryPageAreAnError() {
    AtomicInteger n = new AtomicInteger();
    pages =
        (prefix, token) -> {
          String[] p = new String[2 + 100];
          p[0] = "true";
          p[1] = "tok";
          for (int i = 2; i < p.length; i++) {
            p[i] = prefix + hex(n.incrementAndGet());
          }
          return p;
        };
    assertThatThrownBy(() -> store().list(BlobType.INDEX))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("continuation token it gave before");
  }

  @Test
  void aTruncatedPageWithoutATokenIsAnError() {
    pages = (prefix, token) -> new String[] {"true", null, prefix + hex(1)};
    assertThatThrownBy(() -> store().list(BlobType.INDEX))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("bucket 'bkt' prefix 'repo/index/'")
        .hasMessageContaining("gives no token");
  }

  @Test
  void endlessNewTokensStopAtTheLimitOfPagesAndOfKeys() {
    AtomicInteger n = new AtomicInteger();
    pages =
        (prefix, token) ->
            new String[] {
              "true",
              "t" + n.incrementAndGet(),
              prefix + hex(2 * n.get()),
              prefix + hex(2 * n.get() + 1)
            };
    S3BlobStore s = store();
    s.listLimits(30, 1000);
    assertThatThrownBy(() -> s.list(BlobType.INDEX))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("more than 30 pages");
    assertThat(requests.get()).isEqualTo(30);
    s.listLimits(1000, 25);
    assertThatThrownBy(() -> s.list(BlobType.INDEX))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("more than 25 blobs");
  }

  @Test
  void emptyTruncatedPagesWithNewTokensStopAfterAFewPages() {
    AtomicInteger n = new AtomicInteger();
    pages = (prefix, token) -> new String[] {"true", "t" + n.incrementAndGet()};
    assertThatThrownBy(() -> store().list(BlobType.SNAPSHOT))
        .isInstanceOf(IOException.class)
        .isNotInstanceOf(TransientBlobStoreException.class)
        .hasMessageContaining("127.0.0.1:" + server.port())
        .hasMessageContaining("bucket 'bkt' prefix 'repo/snapshots/'")
        .hasMessageContaining("10 truncated pages in a row brought no new key");
    assertThat(requests.get()).isEqualTo(S3BlobStore.MAX_EMPTY_PAGES);
  }

  @Test
  void theSameKeysOnEveryPageWithNewTokensAreNoProgress() {
    AtomicInteger n = new AtomicInteger();
    pages =
        (prefix, token) ->
            new String[] {"true", "t" + n.incrementAndGet(), prefix + hex(1), prefix + hex(2)};
    assertThatThrownBy(() -> store().list(BlobType.INDEX))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("truncated pages in a row brought no new key");
    assertThat(requests.get()).isEqualTo(S3BlobStore.MAX_EMPTY_PAGES + 1);
  }

  @Test
  void aNewKeyOnEveryPageStopsWhenThePagesOutgrowTheKeys() {
    AtomicInteger n = new AtomicInteger();
    pages =
        (prefix, token) -> new String[] {"true", "t" + n.incrementAndGet(), prefix + hex(n.get())};
    assertThatThrownBy(() -> store().list(BlobType.INDEX))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("bucket 'bkt' prefix 'repo/index/'")
        .hasMessageContaining("more than 50 pages for 50 keys");
    assertThat(requests.get()).isEqualTo(S3BlobStore.PAGE_SLACK);
  }

  @Test
  void aFewEmptyTruncatedPagesAmongFullOnesAreFollowed() throws IOException {
    // a real server may answer a page without keys now and then (MinIO: one at the end)
    AtomicInteger n = new AtomicInteger();
    pages =
        (prefix, token) -> {
          int i = n.incrementAndGet();
          if (i == 30) {
            return new String[] {"false", null};
          }
          if (i % 3 != 0) {
            return new String[] {"true", "t" + i};
          }
          String[] p = new String[2 + 10];
          p[0] = "true";
          p[1] = "t" + i;
          for (int k = 2; k < p.length; k++) {
            p[k] = prefix + hex(i * 100 + k);
          }
          return p;
        };
    S3BlobStore s = store();
    s.pageSize(10);
    assertThat(s.list(BlobType.INDEX)).hasSize(9 * 10);
  }

  @Test
  void keysOutsideThePrefixAreSkippedNotACrash() throws IOException {
    pages =
        (prefix, token) ->
            new String[] {"false", null, "a", "other/" + hex(3), prefix + hex(1), prefix + hex(2)};
    List<BlobName> names = store().list(BlobType.SNAPSHOT);
    assertThat(names)
        .containsExactly(
            new BlobName(BlobType.SNAPSHOT, hex(1)), new BlobName(BlobType.SNAPSHOT, hex(2)));
  }
}
