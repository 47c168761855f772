package io.granule.engine.internal.rest;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * The DNS-rebinding check's view of addresses: a server on [::1] (or on :: reached over ::1) saw
 * Jetty's spelling of the IPv6 loopback address as not loopback, and accepted any Host header.
 */
class LoopbackCheckTest {
  @Test
  void everySpellingOfALoopbackAddressIsLoopback() {
    for (String a :
        new String[] {
          "127.0.0.1",
          "127.1.2.3",
          "::1",
          "[::1]",
          "0:0:0:0:0:0:0:1",
          "[0:0:0:0:0:0:0:1]",
          "0000:0000:0000:0000:0000:0000:0000:0001",
          "::ffff:127.0.0.1",
          "[::1%lo]"
        }) {
      assertThat(ApiServlet.isLoopback(a)).as(a).isTrue();
    }
  }

  @Test
  void otherAddressesAndNamesAreNot() {
    for (String a :
        new String[] {
          "10.0.0.1",
          "::2",
          "[::]",
          "0.0.0.0",
          "fe80::1",
          "127.evil.example",
          "localhost",
          "",
          "::1x"
        }) {
      assertThat(ApiServlet.isLoopback(a)).as(a).isFalse();
    }
    assertThat(ApiServlet.isLoopback(null)).isFalse();
  }

  @Test
  void hostHeadersNamingLoopbackAreAccepted() {
    assertThat(ApiServlet.isLoopbackName("[::1]:8470")).isTrue();
    assertThat(ApiServlet.isLoopbackName("[0:0:0:0:0:0:0:1]:8470")).isTrue();
    assertThat(ApiServlet.isLoopbackName("localhost:8470")).isTrue();
    assertThat(ApiServlet.isLoopbackName("127.0.0.1")).isTrue();
    assertThat(ApiServlet.isLoopbackName("evil.example:8470")).isFalse();
    assertThat(ApiServlet.isLoopbackName("[fe80::1]:8470")).isFalse();
    assertThat(ApiServlet.isLoopbackName("127.0.0.1.evil.example")).isFalse();
  }

  /**
   * Where the kernel cannot be asked, past the cap of table reads at once a loopback request is
   * refused (503 in service) before any read: a flood of another user's requests made each read all
   * of /proc/net/tcp.
   */
  @Test
  void pastTheCapOfPeerLookupsARequestIsRefusedAtOnce() throws Exception {
    jakarta.servlet.http.HttpServletRequest req =
        (jakarta.servlet.http.HttpServletRequest)
            java.lang.reflect.Proxy.newProxyInstance(
                getClass().getClassLoader(),
                new Class<?>[] {jakarta.servlet.http.HttpServletRequest.class},
                (proxy, m, args) ->
                    switch (m.getName()) {
                      case "getLocalAddr", "getRemoteAddr" -> "127.0.0.1";
                      case "getLocalPort" -> 8470;
                      case "getRemotePort" -> 54321;
                      default -> null;
                    });
    try (var cap = io.granule.engine.internal.net.PeerLookupCap.exhausted()) {
      org.assertj.core.api.Assertions.assertThatThrownBy(() -> ApiServlet.otherUser(req))
          .isInstanceOf(io.granule.engine.internal.net.PeerUser.Busy.class);
    }
    // no such connection: refused as no one's
    assertThat(ApiServlet.otherUser(req)).contains("cannot tell which local user");
  }
}
