package io.granule.engine.internal.rest;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Which local user made a loopback connection, from the kernel's socket tables. */
class PeerUserTest {
  static final String TABLE =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout"
          + " inode\n"
          + "   0: 0100007F:2116 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
          + "       0 1 1 0000000000000000 100 0 0 10 0\n"
          + "   1: 0100007F:D431 0100007F:2116 01 00000000:00000000 00:00000000 00000000  1001 "
          + "       0 2 1 0000000000000000 20 4 30 10 -1\n"
          + "   2: 0100007F:2116 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0 "
          + "       0 3 1 0000000000000000 20 4 30 10 -1\n"
          + "   3: 0100007F:D432 0100007F:2116 06 00000000:00000000 00:00000000 00000000    33 "
          + "       0 0 3 0000000000000000\n";

  @Test
  void theClientsSocketNamesItsUser() {
    // 0xD431 = 54321 to 0x2116 = 8470; the listening socket and the server's own end are not it
    assertThat(PeerUser.uids(TABLE, 54321, 8470)).containsExactly(1001);
    // a socket in TIME_WAIT (06) is no connection
    assertThat(PeerUser.uids(TABLE, 54322, 8470)).isEmpty();
    assertThat(PeerUser.uids(TABLE, 8470, 54321)).containsExactly(0);
  }

  @Test
  void aLiveConnectionIsThisProcesssUser() throws Exception {
    try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        Socket client = new Socket(InetAddress.getLoopbackAddress(), server.getLocalPort());
        Socket accepted = server.accept()) {
      assertThat(PeerUser.uidOf(accepted.getPort(), accepted.getLocalPort()))
          .hasValue(PeerUser.self());
    }
  }

  /** Another user's connection (nobody's, through runuser) is that user's, not this process's. */
  @Test
  void anotherUsersConnectionIsTheirs() throws Exception {
    if (PeerUser.self() != 0) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to run a client as nobody");
      throw new AssertionError("PeerUserTest needs root under CI");
    }
    try (ServerSocket server = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      Process p =
          new ProcessBuilder(
                  "runuser",
                  "-u",
                  "nobody",
                  "--",
                  "python3",
                  "-c",
                  "import socket,time; s=socket.create_connection(('127.0.0.1',"
                      + server.getLocalPort()
                      + ")); time.sleep(20)")
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.DISCARD)
              .start();
      try (Socket accepted = server.accept()) {
        assertThat(PeerUser.uidOf(accepted.getPort(), accepted.getLocalPort())).hasValue(65534);
        assertThat(PeerUser.name(65534)).startsWith("nobody");
      } finally {
        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    }
    assertThat(PeerUser.parse("nobody, 1234 ,nosuchuser-x")).containsExactlyInAnyOrder(65534, 1234);
  }
}
