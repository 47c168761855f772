package io.granule.engine.internal.net;

import static org.assertj.core.api.Assertions.assertThat;

import io.granule.engine.internal.nativelib.NativeLibrary;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The peer lookup is one question to the kernel (NETLINK_SOCK_DIAG), whatever the size of its
 * socket tables; where it must read the tables, it streams them. A local user who filled the tables
 * with 54k connections of his own and sent refused requests exhausted the server's heap (audit8
 * H2).
 */
class PeerLookupTest {
  private static final InetAddress LO = InetAddress.getLoopbackAddress();

  private static void assumeNative() {
    if (NativeLibrary.unavailableReason() != null) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), NativeLibrary.unavailableReason());
      throw new AssertionError("libgranule-native is needed under CI");
    }
  }

  private static InetSocketAddress remote(Socket s) {
    return (InetSocketAddress) s.getRemoteSocketAddress();
  }

  private static InetSocketAddress local(Socket s) {
    return (InetSocketAddress) s.getLocalSocketAddress();
  }

  /** Both ways of looking up (the kernel's answer, the tables read) give one answer. */
  private static OptionalInt both(InetSocketAddress client, InetSocketAddress server) {
    OptionalInt kernel = PeerUser.uidOf(client, server);
    assertThat(PeerUser.scanTables(client, server)).as(client + " to " + server).isEqualTo(kernel);
    return kernel;
  }

  /** The platform's attribute {@code name} of MBean {@code bean} (through JMX: no com.sun API). */
  private static long attribute(String bean, String name) throws Exception {
    return (Long)
        ManagementFactory.getPlatformMBeanServer()
            .getAttribute(new javax.management.ObjectName(bean), name);
  }

  /** Bytes this thread allocated so far. */
  private static long allocated() throws Exception {
    return attribute("java.lang:type=Threading", "CurrentThreadAllocatedBytes");
  }

  @Test
  void theKernelNamesTheOwnerOfTheExactPairOfEnds() throws Exception {
    assumeNative();
    assertThat(PeerUser.asksTheKernel()).isTrue();
    int self = PeerUser.self();
    for (InetAddress a : List.of(LO, InetAddress.getByName("::1"))) {
      try (ServerSocket server = new ServerSocket(0, 5, a);
          Socket client = new Socket(a, server.getLocalPort());
          Socket accepted = server.accept();
          ServerSocket unused = new ServerSocket(0, 1, a)) {
        long[] found = PeerUser.diag(local(client), remote(client));
        assertThat(found).hasSize(3);
        assertThat(found[0]).isEqualTo(1); // established
        assertThat(found[1]).isEqualTo(self);
        assertThat(found[2]).isNotZero();
        assertThat(both(remote(accepted), local(accepted))).hasValue(self);
        // the server's end is a socket of this process too; the listener is no connection
        assertThat(both(local(accepted), remote(accepted))).hasValue(self);
        InetSocketAddress listener = (InetSocketAddress) server.getLocalSocketAddress();
        InetSocketAddress nobody = new InetSocketAddress(a, unused.getLocalPort());
        assertThat(both(listener, nobody)).isEmpty();
        // an unrelated pair of ends: another port, another loopback address
        assertThat(both(nobody, local(accepted))).isEmpty();
        if (a == LO) {
          InetSocketAddress other =
              new InetSocketAddress(InetAddress.getByName("127.0.0.2"), client.getLocalPort());
          assertThat(both(other, local(accepted))).isEmpty();
        }
        // a client that closed its sending side after the request is still its user's
        client.shutdownOutput();
        assertThat(both(remote(accepted), local(accepted))).hasValue(self);
        // closed on both sides (TIME_WAIT): no one's
        client.close();
        accepted.close();
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (PeerUser.uidOf(remote(accepted), local(accepted)).isPresent()
            && System.nanoTime() < deadline) {
          Thread.sleep(10);
        }
        assertThat(both(remote(accepted), local(accepted))).isEmpty();
      }
    }
  }

  /**
   * With 8000 (fd limit allowing) connections of this process in the tables, a lookup reads no
   * table and allocates next to nothing; the fallback streams the table (a fixed buffer, not the
   * table's size).
   */
  @Test
  void aLargeTableIsNotReadIntoMemory() throws Exception {
    assumeNative();
    long fds = attribute("java.lang:type=OperatingSystem", "MaxFileDescriptorCount");
    int pairs = (int) Math.min(8000, (fds - 1000) / 2);
    assertThat(pairs).isGreaterThan(500);
    List<Socket> open = new ArrayList<>();
    try (ServerSocket server = new ServerSocket(0, 4096, LO)) {
      for (int i = 0; i < pairs; i++) {
        open.add(new Socket(LO, server.getLocalPort()));
        open.add(server.accept());
      }
      Socket first = open.get(1);
      Socket last = open.get(open.size() - 1);
      long reads = PeerUser.TABLES_READ.get();
      PeerUser.uidOf(remote(last), local(last)); // warm up
      long before = allocated();
      for (int i = 0; i < 100; i++) {
        assertThat(PeerUser.uidOf(remote(first), local(first))).hasValue(PeerUser.self());
        assertThat(PeerUser.uidOf(remote(last), local(last))).hasValue(PeerUser.self());
      }
      long perLookup = (allocated() - before) / 200;
      assertThat(PeerUser.TABLES_READ.get()).isEqualTo(reads);
      assertThat(perLookup).isLessThan(4096);

      long table = 0;
      for (String t : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
        try (InputStream in = java.nio.file.Files.newInputStream(java.nio.file.Path.of(t))) {
          table += in.transferTo(java.io.OutputStream.nullOutputStream());
        }
      }
      assertThat(table).isGreaterThan(pairs * 2L * 100);
      PeerUser.scanTables(remote(last), local(last)); // warm up
      before = allocated();
      assertThat(PeerUser.scanTables(remote(last), local(last))).hasValue(PeerUser.self());
      long scanned = allocated() - before;
      assertThat(scanned).isLessThan(Math.min(256 * 1024, table / 4));
    } finally {
      for (Socket s : open) {
        s.close();
      }
    }
  }

  /** The fallback stops at the first match, and reads a table of any size in fixed memory. */
  @Test
  void theTablesAreReadLineByLineUpToTheMatch() throws Exception {
    InetSocketAddress server = PeerUserTest.at("127.0.0.1", 8470);
    String match =
        "   1: 0100007F:D431 0100007F:2116 01 00000000:00000000 00:00000000 00000000  1001 "
            + "       0 2 1 0000000000000000 20 4 30 10 -1\n";
    String filler =
        "   2: 0100007F:9999 0100007F:8888 01 00000000:00000000 00:00000000 00000000  1002 "
            + "       0 3 1 0000000000000000 20 4 30 10 -1\n";
    int rows = 54_000;
    Rows first = new Rows(match, filler, rows, 0);
    assertThat(PeerUser.scan(first, PeerUserTest.at("127.0.0.1", 54321), server)).isEqualTo(1001);
    assertThat(first.read).isLessThan(64 * 1024); // of 8 MB
    Rows last = new Rows(match, filler, rows, rows - 1);
    long before = allocated();
    assertThat(PeerUser.scan(last, PeerUserTest.at("127.0.0.1", 54321), server)).isEqualTo(1001);
    assertThat(allocated() - before).isLessThan(256 * 1024);
    assertThat(last.read).isGreaterThan(rows * 100L);
    // a line longer than any socket's is skipped, not kept
    Rows longLine = new Rows(" ".repeat(100_000) + match, filler, 3, 0);
    assertThat(PeerUser.scan(longLine, PeerUserTest.at("127.0.0.1", 54321), server)).isEqualTo(-1);
  }

  /** Rows of a table, made as they are read: {@code match} at row {@code at}, else filler. */
  private static final class Rows extends InputStream {
    private final byte[] match;
    private final byte[] filler;
    private final int rows;
    private final int at;
    private int row;
    private int pos;
    long read;

    Rows(String match, String filler, int rows, int at) {
      this.match = match.getBytes(StandardCharsets.US_ASCII);
      this.filler = filler.getBytes(StandardCharsets.US_ASCII);
      this.rows = rows;
      this.at = at;
    }

    @Override
    public int read() throws IOException {
      byte[] b = new byte[1];
      return read(b, 0, 1) < 0 ? -1 : b[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) {
      if (row >= rows) {
        return -1;
      }
      byte[] r = row == at ? match : filler;
      int n = Math.min(len, r.length - pos);
      System.arraycopy(r, pos, b, off, n);
      pos += n;
      if (pos == r.length) {
        row++;
        pos = 0;
      }
      read += n;
      return n;
    }
  }

  /**
   * Where the kernel cannot be asked, at most {@link PeerUser#LOOKUPS_AT_ONCE} reads of its tables
   * run at once; past that a connection is refused at once with one shared exception, not queued.
   */
  @Test
  void tableReadsPastTheCapAreRefusedAtOnce() throws Exception {
    try (ServerSocket server = new ServerSocket(0, 1, LO);
        Socket client = new Socket(LO, server.getLocalPort());
        Socket accepted = server.accept()) {
      try (PeerLookupCap cap = PeerLookupCap.exhausted()) {
        PeerUser.Busy busy = null;
        for (int i = 0; i < 2; i++) {
          Throwable t =
              org.assertj.core.api.Assertions.catchThrowable(
                  () -> PeerUser.refusal(remote(accepted), local(accepted), Set.of(), "x"));
          assertThat(t).isInstanceOf(PeerUser.Busy.class);
          assertThat(t.getStackTrace()).isEmpty();
          if (busy != null) {
            assertThat(t).isSameAs(busy);
          }
          busy = (PeerUser.Busy) t;
        }
        // a server on another address looks its clients up too (audit10 rest F1)
        assertThat(
                org.assertj.core.api.Assertions.catchThrowable(
                    () ->
                        PeerUser.refusal(
                            remote(accepted),
                            new InetSocketAddress(InetAddress.getByName("10.0.0.1"), 1),
                            Set.of(),
                            "x")))
            .isSameAs(busy);
      }
      assertThat(PeerUser.refusal(remote(accepted), local(accepted), Set.of(), "x")).isNull();
      assertThat(PeerUser.LOOKUPS.availablePermits()).isEqualTo(PeerUser.LOOKUPS_AT_ONCE);
    }
  }

  /**
   * The kernel's exact lookup is not capped: a flood of another user's connections taking up the
   * tables' cap does not turn the server's own user away (it got 503 with the others).
   */
  @Test
  void kernelLookupsAreNotCapped() throws Exception {
    assertThat(PeerUser.asksTheKernel()).isTrue();
    try (ServerSocket server = new ServerSocket(0, 1, LO);
        Socket client = new Socket(LO, server.getLocalPort());
        Socket accepted = server.accept()) {
      PeerUser.LOOKUPS.acquire(PeerUser.LOOKUPS_AT_ONCE);
      try {
        long read = PeerUser.TABLES_READ.get();
        assertThat(PeerUser.refusal(remote(accepted), local(accepted), Set.of(), "x")).isNull();
        assertThat(PeerUser.TABLES_READ.get()).isEqualTo(read);
      } finally {
        PeerUser.LOOKUPS.release(PeerUser.LOOKUPS_AT_ONCE);
      }
    }
  }
}
