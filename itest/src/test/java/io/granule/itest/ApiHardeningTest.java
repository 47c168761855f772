package io.granule.itest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The REST API against bad input and misuse (from an adversarial audit): every refusal is a JSON
 * 4xx naming the problem, never HTML or a 500, never a job doomed to fail; requests a web page
 * could send from the operator's browser are refused; jobs on one repository start in the order
 * they were submitted, another repository's never wait behind them, and a job can be cancelled; two
 * restores to one new target are not both accepted.
 */
class ApiHardeningTest {
  private static final int MIB = 1 << 20;

  @TempDir Path tmp;

  /** curl as {@code user} (through runuser) to {@code url}: the HTTP status and body. */
  static String curlAs(String user, String url) throws Exception {
    Process p =
        new ProcessBuilder("runuser", "-u", user, "--", "curl", "-s", "-w", "\n%{http_code}", url)
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
    return out;
  }

  /**
   * A server told to listen on IPv6 loopback or on every address never started: it could not find
   * its port in an unbracketed IPv6 endpoint, and probed 0.0.0.0 by that name, which the API
   * refuses. On IPv6 loopback other users are refused as on IPv4 (their connections closed as they
   * are accepted: curl reads no answer, status 000).
   */
  @Test
  void ipv6LoopbackAndWildcardAddressesStart() throws Exception {
    for (String listen : List.of("[::1]:0", "0.0.0.0:0")) {
      try (Granule.Server server =
          Granule.Server.start(
              tmp.resolve("data-" + listen.length()), List.of(), Map.of(), listen)) {
        String url = server.url.toString().replace("0.0.0.0", "127.0.0.1") + "api/version";
        assertThat(curlAs("root", url)).as(listen).endsWith("\n200");
        if (listen.startsWith("[") && "root".equals(System.getProperty("user.name"))) {
          assertThat(curlAs("nobody", url)).endsWith("\n000");
        }
      }
    }
  }

  /**
   * A root server on loopback took jobs from every local user: any of them could restore bytes of
   * their choice over any file. Only the server's own user and root may use it, and the users
   * {@code --api-users} names (told by the kernel's socket table). Another user's connection is
   * closed as it is accepted, before a byte of it is read (curl gets no answer: 000); the server's
   * log says why.
   */
  @Test
  void onlyTheServersUserRootAndNamedUsersMayUseALoopbackServer() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to run a client as another user");
      throw new AssertionError("needs root under CI");
    }
    try (Granule.Server server = Granule.Server.start(tmp.resolve("data"), List.of())) {
      String version = server.url.resolve("/api/version").toString();
      assertThat(curlAs("root", version)).endsWith("\n200");
      assertThat(curlAs("nobody", version)).endsWith("\n000");
      long deadline = System.nanoTime() + 5_000_000_000L;
      while (!server.console().contains("user nobody (uid 65534) may not use this server")
          && System.nanoTime() < deadline) {
        Thread.sleep(50);
      }
      assertThat(server.console())
          .contains("user nobody (uid 65534) may not use this server")
          .contains("--api-users");
    }
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data2"), List.of("-Dgranule.api.users=daemon,nobody"))) {
      assertThat(curlAs("nobody", server.url.resolve("/api/version").toString())).endsWith("\n200");
    }
  }

  /**
   * audit10 rest F1: a server on 0.0.0.0, :: or a host address judged no connection, so a local
   * user who connected through the host's own address (which a firewall does not filter for local
   * users) ran jobs as root. Local users are judged on every address of this host; the server warns
   * at start that it listens on a non-loopback address.
   */
  @Test
  void onAHostAddressLocalUsersAreJudgedAsOnLoopback() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to run a client as another user");
      throw new AssertionError("needs root under CI");
    }
    String host = null;
    for (java.net.NetworkInterface i :
        java.util.Collections.list(java.net.NetworkInterface.getNetworkInterfaces())) {
      for (java.net.InetAddress a : java.util.Collections.list(i.getInetAddresses())) {
        if (host == null
            && i.isUp()
            && !i.isLoopback()
            && a instanceof java.net.Inet4Address
            && !a.isLinkLocalAddress()) {
          host = a.getHostAddress();
        }
      }
    }
    org.junit.jupiter.api.Assumptions.assumeTrue(host != null, "no non-loopback address here");
    for (String listen : List.of("0.0.0.0:0", "[::]:0", host + ":0")) {
      try (Granule.Server server =
          Granule.Server.start(
              tmp.resolve("data-" + listen.length()), List.of(), Map.of(), listen)) {
        String version = "http://" + host + ":" + server.url.getPort() + "/api/version";
        assertThat(curlAs("root", version)).as(listen).endsWith("\n200");
        assertThat(curlAs("nobody", version)).as(listen).endsWith("\n000");
        assertThat(server.console())
            .as(listen)
            .contains("warning: the REST API listens on")
            .contains("not a loopback address");
      }
    }
  }

  /**
   * python3 as {@code user}: opens {@code count} connections to {@code port} and holds them; once
   * all are open it prints "open N", then for the first connection what a read of it gives within 3
   * s ("eof" if the server closed it, "open" if it is still open), then keeps them {@code
   * holdSeconds}.
   */
  private static Process holdAs(String user, int port, int count, int holdSeconds)
      throws Exception {
    String script =
        "import socket,sys,time\n"
            + "socks=[]\n"
            + "for i in range("
            + count
            + "):\n"
            + "    socks.append(socket.create_connection(('127.0.0.1',"
            + port
            + ")))\n"
            + "print('open',len(socks),flush=True)\n"
            + "socks[0].settimeout(3)\n"
            + "try:\n"
            + "    print('eof' if socks[0].recv(1)==b'' else 'data',flush=True)\n"
            + "except socket.timeout:\n"
            + "    print('open',flush=True)\n"
            + "except OSError as e:\n"
            + "    print('eof',e,flush=True)\n"
            + "time.sleep("
            + holdSeconds
            + ")\n";
    return new ProcessBuilder("runuser", "-u", user, "--", "python3", "-c", script)
        .redirectErrorStream(true)
        .start();
  }

  private static long openFiles(Process p) throws Exception {
    try (var files = Files.list(Path.of("/proc", Long.toString(p.pid()), "fd"))) {
      return files.count();
    }
  }

  /**
   * audit9 rest F3/F6: the check of who made a connection ran only once a request's headers had
   * come, so another local user could hold as many connections as he liked (the server, root, ran
   * out of descriptors and its own requests timed out), and queue requests that waited to be
   * accepted. Another user's connection is now closed as it is accepted, before anything is read
   * from it: a read of it ends at once, while root's stays open; a flood of 500 of them holds no
   * descriptors of the server's, and root is served meanwhile.
   */
  @Test
  void anotherUsersConnectionsAreClosedAsTheyAreAccepted() throws Exception {
    if (!"root".equals(System.getProperty("user.name"))) {
      org.junit.jupiter.api.Assumptions.assumeTrue(
          "true".equals(System.getenv("CI")), "needs root to run a client as another user");
      throw new AssertionError("needs root under CI");
    }
    try (Granule.Server server = Granule.Server.start(tmp.resolve("data"), List.of())) {
      int port = server.url.getPort();
      String version = server.url.resolve("/api/version").toString();
      assertThat(curlAs("root", version)).endsWith("\n200");

      Process root = holdAs("root", port, 1, 0);
      assertThat(new String(root.getInputStream().readAllBytes(), StandardCharsets.UTF_8))
          .isEqualTo("open 1\nopen\n");
      Process nobody = holdAs("nobody", port, 1, 0);
      long start = System.nanoTime();
      String one = new String(nobody.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      assertThat(one).startsWith("open 1\neof");
      assertThat(System.nanoTime() - start).isLessThan(2_500_000_000L); // not the read's 3 s

      long before = openFiles(server.process);
      Process flood = holdAs("nobody", port, 500, 30);
      try {
        java.io.BufferedReader out =
            new java.io.BufferedReader(
                new java.io.InputStreamReader(flood.getInputStream(), StandardCharsets.UTF_8));
        assertThat(out.readLine()).isEqualTo("open 500");
        assertThat(out.readLine()).startsWith("eof");
        // nobody holds 500 connections; the server holds none of them
        assertThat(openFiles(server.process)).isLessThan(before + 50);
        for (int i = 0; i < 5; i++) {
          assertThat(curlAs("root", version)).endsWith("\n200");
        }
      } finally {
        flood.destroyForcibly().waitFor(10, java.util.concurrent.TimeUnit.SECONDS);
      }
    }
  }

  @Test
  void badInputCrossSiteRequestsJobOrderCancelAndTargetClaims() throws Exception {
    byte[] data = new byte[32 * MIB];
    new Random(9).nextBytes(data);
    Path image = Files.write(tmp.resolve("vm.img"), data);
    Path repo = tmp.resolve("repo");
    Path other = tmp.resolve("other");
    for (Path r : List.of(repo, other)) {
      Granule.Result res =
          Granule.run(tmp, "init", "--insecure-no-encryption", "--repo", r.toString());
      assertThat(res.exitCode()).as(res.err()).isZero();
      res =
          Granule.run(
              tmp, "backup", "--repo", r.toString(), "--disk", "vm=" + image, "--no-progress");
      assertThat(res.exitCode()).as(res.err()).isZero();
    }

    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of(), Granule.NO_PASSWORD)) {
      Api api = new Api(server.url);

      // a JSON null, a null disk, a NUL in a path, invalid names, null tags: 400 JSON
      for (String endpoint :
          List.of("/api/backups", "/api/verify", "/api/restores/disk", "/api/restores/table")) {
        Api.Response r = api.post(endpoint, "null");
        assertThat(r.status()).as(endpoint).isEqualTo(400);
        assertThat(r.body().get("error").asText()).contains("empty or null");
      }
      String[] bad = {
        "{\"repo\":\"" + repo + "\",\"disks\":[null]}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"path\":\"" + image + "\u0000x\"}]}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"name\":\"a/b\",\"path\":\"" + image + "\"}]}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"name\":\"\",\"path\":\"" + image + "\"}]}",
        "{\"repo\":\""
            + repo
            + "\",\"disks\":[{\"name\":\"x\",\"path\":\""
            + image
            + "\"},{\"name\":\"x\",\"path\":\""
            + image
            + "\"}]}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"path\":\"" + image + "\"}],\"tags\":[null]}",
        "{\"repo\":\"repo\",\"disks\":[{\"path\":\"" + image + "\"}]}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"path\":\"vm.img\"}]}",
        "{\"repo\":\"s3:bucket/r\",\"disks\":[{\"path\":\"" + image + "\"}]}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"path\":\"" + image + "\"}]} trailing",
        "{\"repo\":\"" + repo + "\",\"repo\":\"/x\",\"disks\":[{\"path\":\"" + image + "\"}]}",
        "{\"repo\":\"" + repo + "\",\"disk\":[{\"path\":\"" + image + "\"}]}",
        // values of another JSON type are refused, not coerced
        "{\"repo\":\""
            + repo
            + "\",\"disks\":[{\"path\":\""
            + image
            + "\"}],\"freeze\":[\"/\"],\"freezeTimeoutSeconds\":\"20\"}",
        "{\"repo\":\""
            + repo
            + "\",\"disks\":[{\"path\":\""
            + image
            + "\"}],\"freeze\":[\"/\"],\"freezeTimeoutSeconds\":1.5}",
        "{\"repo\":\"" + repo + "\",\"disks\":[{\"path\":\"" + image + "\"}],\"tags\":\"t\"}",
      };
      for (String body : bad) {
        Api.Response r = api.post("/api/backups", body.replace("\u0000", "\\u0000"));
        assertThat(r.status()).as(body).isEqualTo(400);
        assertThat(r.body().get("error").asText()).as(body).isNotBlank();
      }
      Api.Response bogus =
          api.post(
              "/api/restores/table",
              Api.JSON.writeValueAsString(
                  Map.of(
                      "repo", repo.toString(),
                      "snapshot", "latest",
                      "object", "bogus",
                      "to", "postgres://u@127.0.0.1:1/x")));
      assertThat(bogus.status()).isEqualTo(400);
      assertThat(bogus.body().get("error").asText()).contains("use PLUGIN:ID");
      Api.Response nul = api.get("/api/stats?repo=%00");
      assertThat(nul.status()).isEqualTo(400);
      assertThat(nul.body().get("error").asText()).contains("invalid path");
      Api.Response huge = api.post("/api/verify", "{\"repo\":\"" + "x".repeat(2 * MIB) + "\"}");
      assertThat(huge.status()).isEqualTo(413);
      assertThat(api.get("/api/jobs").body()).as("no job was queued").isEmpty();

      // cross-site: another origin, or a loopback server reached under a foreign name
      Api.Response cross =
          api.send(
              "POST",
              "/api/verify",
              "{\"repo\":\"" + repo + "\"}",
              "Origin",
              "http://evil.example",
              "Content-Type",
              "text/plain");
      assertThat(cross.status()).isEqualTo(403);
      assertThat(cross.body().get("error").asText()).contains("cross-origin");
      Api.Response noOrigin =
          api.send(
              "POST",
              "/api/verify",
              "{\"repo\":\"" + repo + "\"}",
              "Sec-Fetch-Site",
              "cross-site",
              "Referer",
              "http://evil.example/");
      assertThat(noOrigin.status()).as("a browser's cross-site POST without Origin").isEqualTo(403);
      String sameOrigin = "http://" + server.url.getAuthority();
      assertThat(api.send("GET", "/api/version", null, "Origin", sameOrigin).status())
          .isEqualTo(200);
      String rebound = rawGet(server.url.getPort(), "evil.example:" + server.url.getPort());
      assertThat(rebound).startsWith("HTTP/1.1 403").contains("loopback");
      assertThat(rawGet(server.url.getPort(), "localhost:" + server.url.getPort()))
          .startsWith("HTTP/1.1 200");
      assertThat(rawGet(server.url.getPort(), "127.0.0.1:" + server.url.getPort()))
          .startsWith("HTTP/1.1 200");
      // names that only begin like a loopback address can be rebound by whoever owns them
      for (String name : List.of("127.evil.example", "127.0.0.1.evil.example", "127.0.0.1x")) {
        assertThat(rawGet(server.url.getPort(), name + ":" + server.url.getPort()))
            .as(name)
            .startsWith("HTTP/1.1 403");
      }
      // methods the API has no use for (TRACE would echo headers), a query that is not valid
      // percent-encoding, null option values, a negative freeze timeout: JSON errors, no job
      String hostPort = "127.0.0.1:" + server.url.getPort();
      for (String method : List.of("TRACE", "PUT", "PATCH")) {
        String answer = raw(server.url.getPort(), method, "/api/jobs", hostPort);
        assertThat(answer).as(method).startsWith("HTTP/1.1 405").contains("application/json");
      }
      assertThat(raw(server.url.getPort(), "GET", "/api/snapshots?repo=%zz", hostPort))
          .startsWith("HTTP/1.1 400")
          .contains("application/json");
      Api.Response nullOption =
          api.post(
              "/api/restores/table",
              "{\"repo\":\""
                  + repo
                  + "\",\"snapshot\":\"latest\",\"object\":\"postgres:db/t\","
                  + "\"to\":\"postgres://u@127.0.0.1:1/x\",\"options\":{\"pg-bin\":null}}");
      assertThat(nullOption.status()).as(nullOption.body().toString()).isEqualTo(400);
      Api.Response negative =
          api.post(
              "/api/backups",
              "{\"repo\":\""
                  + repo
                  + "\",\"disks\":[{\"path\":\""
                  + image
                  + "\"}],\"freeze\":[\"/\"],\"freezeTimeoutSeconds\":-1}");
      assertThat(negative.status()).as(negative.body().toString()).isEqualTo(400);
      Api.Response endless =
          api.post(
              "/api/backups",
              "{\"repo\":\""
                  + repo
                  + "\",\"disks\":[{\"path\":\""
                  + image
                  + "\"}],\"freeze\":[\"/\"],\"freezeTimeoutSeconds\":9223372036854775807}");
      assertThat(endless.status()).as(endless.body().toString()).isEqualTo(400);
      assertThat(endless.body().get("error").asText()).contains("at most 86400");
      assertThat(api.get("/api/jobs").body()).isEmpty();

      // five verifies of one repository reading data, then one of another: the five start in
      // submission order, one at a time; the other repository's starts at once
      List<String> ids = new ArrayList<>();
      for (int i = 0; i < 5; i++) {
        ids.add(verify(api, repo));
      }
      String otherId = verify(api, other);
      JsonNode cancelled = api.send("DELETE", "/api/jobs/" + ids.get(4), null).body();
      assertThat(cancelled.get("state").asText()).isEqualTo("FAILED");
      assertThat(cancelled.get("exitCode").asInt()).isEqualTo(130);
      assertThat(cancelled.get("error").asText()).contains("cancelled before it started");
      assertThat(cancelled.get("cancelRequested").asBoolean()).as("it has ended").isFalse();
      assertThat(api.send("DELETE", "/api/jobs/nope", null).status()).isEqualTo(404);

      JsonNode otherJob = api.awaitJob(otherId);
      assertThat(otherJob.get("state").asText()).isEqualTo("SUCCEEDED");
      JsonNode first = api.get("/api/jobs/" + ids.get(0)).body();
      assertThat(Instant.parse(otherJob.get("started").asText()))
          .as("the other repository's job did not wait for the first repository's queue")
          .isBefore(
              first.get("finished").isNull()
                  ? Instant.now()
                  : Instant.parse(first.get("finished").asText()));
      Instant previousEnd = Instant.MIN;
      for (String id : ids.subList(0, 4)) {
        JsonNode j = api.awaitJob(id);
        assertThat(j.get("state").asText()).as(j.toString()).isEqualTo("SUCCEEDED");
        Instant started = Instant.parse(j.get("started").asText());
        assertThat(started).as("in order, one at a time").isAfterOrEqualTo(previousEnd);
        previousEnd = Instant.parse(j.get("finished").asText());
      }

      // two restores to one new target: the second is refused at once
      Path target = tmp.resolve("restored.img");
      String body =
          Api.JSON.writeValueAsString(
              Map.of("repo", repo.toString(), "snapshot", "latest", "to", target.toString()));
      verify(api, repo); // keeps the repository busy, so the first restore waits queued
      Api.Response a = api.post("/api/restores/disk", body);
      Api.Response b = api.post("/api/restores/disk", body);
      assertThat(a.status()).isEqualTo(202);
      assertThat(b.status()).as(b.body().toString()).isEqualTo(409);
      assertThat(b.body().get("error").asText()).contains("restore target").contains("taken");
      JsonNode restored = api.awaitJob(a.body().get("id").asText());
      assertThat(restored.get("state").asText()).as(restored.toString()).isEqualTo("SUCCEEDED");
      assertThat(Files.readAllBytes(target)).isEqualTo(data);
    }
  }

  private static String verify(Api api, Path repo) throws Exception {
    Api.Response r =
        api.post(
            "/api/verify",
            Api.JSON.writeValueAsString(Map.of("repo", repo.toString(), "readData", true)));
    assertThat(r.status()).as(r.body().toString()).isEqualTo(202);
    return r.body().get("id").asText();
  }

  /** GET /api/version with this Host header, over a plain socket; the status line and body. */
  private static String rawGet(int port, String host) throws Exception {
    return raw(port, "GET", "/api/version", host);
  }

  /** A request over a plain socket; the status line, headers and body. */
  /**
   * Clients that send a body a byte now and then (slowloris) held one of the container's threads
   * each until it had none left: 300 of them took the API down for as long as they kept going.
   * Bodies are now read without a thread, and one not received in time gets 408.
   */
  @Test
  @org.junit.jupiter.api.Timeout(300)
  void clientsTricklingBodiesNeitherHoldTheApiNorWaitForever() throws Exception {
    try (Granule.Server server =
        Granule.Server.start(tmp.resolve("data"), List.of("-Dgranule.api.bodyTimeoutMs=10000"))) {
      Api api = new Api(server.url);
      int port = server.url.getPort();
      List<Socket> slow = new ArrayList<>();
      try {
        for (int i = 0; i < 300; i++) {
          Socket s = new Socket("127.0.0.1", port);
          s.getOutputStream()
              .write(
                  ("POST /api/backups HTTP/1.1\r\nHost: 127.0.0.1:"
                          + port
                          + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
                      .getBytes(StandardCharsets.US_ASCII));
          slow.add(s);
        }
        for (int round = 0; round < 3; round++) {
          for (Socket s : slow) {
            try {
              s.getOutputStream().write(' ');
            } catch (java.io.IOException answered) {
              // a slow machine: its 408 came already, and the server closed it
            }
          }
          long t0 = System.nanoTime();
          assertThat(api.get("/api/version").status()).isEqualTo(200);
          assertThat((System.nanoTime() - t0) / 1_000_000)
              .as("ms to answer beside 300 trickling clients")
              .isLessThan(3000);
          Thread.sleep(500);
        }
        Socket first = slow.get(0);
        first.setSoTimeout(30_000);
        String answer = new String(first.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(answer)
            .startsWith("HTTP/1.1 408")
            .contains("application/json")
            .contains("request body not received within 10000 ms");
      } finally {
        for (Socket s : slow) {
          s.close();
        }
      }
      // a body cut off by a client that went away leaves the API as it was
      for (int i = 0; i < 20; i++) {
        try (Socket s = new Socket("127.0.0.1", port)) {
          s.getOutputStream()
              .write(
                  ("POST /api/verify HTTP/1.1\r\nHost: 127.0.0.1:"
                          + port
                          + "\r\nContent-Length: 100\r\n\r\n{\"re")
                      .getBytes(StandardCharsets.US_ASCII));
        }
      }
      assertThat(api.get("/api/version").status()).isEqualTo(200);
      assertThat(api.get("/api/jobs").body()).as("no job was queued").isEmpty();
      assertThat(server.console()).doesNotContain("Exception");
    }
  }

  private static String raw(int port, String method, String path, String host) throws Exception {
    try (Socket s = new Socket("127.0.0.1", port)) {
      OutputStream out = s.getOutputStream();
      out.write(
          (method
                  + " "
                  + path
                  + " HTTP/1.1\r\nHost: "
                  + host
                  + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      InputStream in = s.getInputStream();
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}
