package io.granule.engine.internal.repo.blob;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * A TCP proxy in front of an HTTP server that passes bytes unchanged (so request signatures stay
 * valid), except that it cuts the body of the next {@code cuts} responses to GETs whose request
 * line {@code target} accepts: the full Content-Length announced, half the body sent, then the
 * connection closed, as a server restart or a network drop mid-body does.
 */
final class CuttingProxy implements AutoCloseable {
  private final ServerSocket server;
  private final int upstream;
  private final AtomicInteger cuts = new AtomicInteger();
  private final AtomicInteger cut = new AtomicInteger();
  private volatile Predicate<String> target = line -> false;

  CuttingProxy(int upstream) throws IOException {
    this.upstream = upstream;
    this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread t = new Thread(this::accept, "cutting-proxy");
    t.setDaemon(true);
    t.start();
  }

  String endpoint() {
    return "http://127.0.0.1:" + server.getLocalPort();
  }

  /** Cuts the next {@code n} responses to GETs whose request line {@code which} accepts. */
  void cutNext(int n, Predicate<String> which) {
    target = which;
    cuts.set(n);
  }

  /** Responses cut so far. */
  int cutSoFar() {
    return cut.get();
  }

  private void accept() {
    while (!server.isClosed()) {
      try {
        Socket client = server.accept();
        Socket up = new Socket(InetAddress.getLoopbackAddress(), upstream);
        ConcurrentLinkedQueue<String> requests = new ConcurrentLinkedQueue<>();
        start(() -> requests(client, up, requests));
        start(() -> responses(up, client, requests));
      } catch (IOException e) {
        return;
      }
    }
  }

  private static void start(Runnable r) {
    Thread t = new Thread(r, "cutting-proxy-pipe");
    t.setDaemon(true);
    t.start();
  }

  /** Client to server, unchanged; records each request line (bodies of PUTs skipped by length). */
  private static void requests(Socket client, Socket up, ConcurrentLinkedQueue<String> lines) {
    try (client;
        up) {
      InputStream in = client.getInputStream();
      OutputStream out = up.getOutputStream();
      while (true) {
        String head = readHead(in);
        if (head == null) {
          return;
        }
        lines.add(head.substring(0, head.indexOf('\r')));
        out.write(head.getBytes(StandardCharsets.ISO_8859_1));
        copy(in, out, contentLength(head));
        out.flush();
      }
    } catch (IOException e) {
      // closed
    }
  }

  /** Server to client: each response whole, or the body cut in half for a targeted GET. */
  private void responses(Socket up, Socket client, ConcurrentLinkedQueue<String> lines) {
    try (client;
        up) {
      InputStream in = up.getInputStream();
      OutputStream out = client.getOutputStream();
      while (true) {
        String head = readHead(in);
        if (head == null) {
          return;
        }
        String request = lines.poll();
        boolean head0 = request != null && request.startsWith("HEAD ");
        boolean noBody =
            head0 || head.startsWith("HTTP/1.1 204") || head.startsWith("HTTP/1.1 304");
        if (!noBody && head.toLowerCase(Locale.ROOT).contains("transfer-encoding: chunked")) {
          out.write(head.getBytes(StandardCharsets.ISO_8859_1));
          copyChunked(in, out);
          out.flush();
          continue;
        }
        long length = noBody ? 0 : contentLength(head);
        boolean get = request != null && request.startsWith("GET ");
        boolean ok = head.startsWith("HTTP/1.1 200") || head.startsWith("HTTP/1.1 206");
        out.write(head.getBytes(StandardCharsets.ISO_8859_1));
        if (get && ok && length > 1 && target.test(request) && cuts.getAndDecrement() > 0) {
          copy(in, out, length / 2);
          out.flush();
          cut.incrementAndGet();
          return; // closes both
        }
        copy(in, out, length);
        out.flush();
      }
    } catch (IOException e) {
      // closed
    }
  }

  private static void copyChunked(InputStream in, OutputStream out) throws IOException {
    while (true) {
      String line = readLine(in);
      out.write(line.getBytes(StandardCharsets.ISO_8859_1));
      int semi = line.indexOf(';');
      long size = Long.parseLong((semi < 0 ? line : line.substring(0, semi)).trim(), 16);
      if (size == 0) {
        out.write(readLine(in).getBytes(StandardCharsets.ISO_8859_1)); // the final CRLF
        return;
      }
      copy(in, out, size);
      out.write(readLine(in).getBytes(StandardCharsets.ISO_8859_1));
    }
  }

  private static String readLine(InputStream in) throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int prev = -1;
    while (true) {
      int c = in.read();
      if (c < 0) {
        throw new IOException("closed mid-line");
      }
      b.write(c);
      if (prev == '\r' && c == '\n') {
        return b.toString(StandardCharsets.ISO_8859_1);
      }
      prev = c;
    }
  }

  private static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int state = 0;
    while (state < 4) {
      int c = in.read();
      if (c < 0) {
        return null;
      }
      b.write(c);
      state =
          (c == '\r' && (state == 0 || state == 2)) || (c == '\n' && (state == 1 || state == 3))
              ? state + 1
              : (c == '\r' ? 1 : 0);
    }
    return b.toString(StandardCharsets.ISO_8859_1);
  }

  private static long contentLength(String head) {
    for (String line : head.split("\r\n")) {
      if (line.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
        return Long.parseLong(line.substring(line.indexOf(':') + 1).trim());
      }
    }
    return 0;
  }

  private static void copy(InputStream in, OutputStream out, long n) throws IOException {
    byte[] buf = new byte[64 << 10];
    while (n > 0) {
      int r = in.read(buf, 0, (int) Math.min(buf.length, n));
      if (r < 0) {
        throw new IOException("closed mid-body");
      }
      out.write(buf, 0, r);
      n -= r;
    }
  }

  @Override
  public void close() throws IOException {
    server.close();
  }
}
