package io.granule.itest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;

/** A small client of the REST API. */
final class Api {
  static final ObjectMapper JSON = new ObjectMapper();
  private final HttpClient http = HttpClient.newHttpClient();
  private final URI base;

  Api(URI base) {
    this.base = base;
  }

  record Response(int status, JsonNode body) {}

  Response get(String path) throws Exception {
    HttpResponse<String> r =
        http.send(
            HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(60)).build(),
            HttpResponse.BodyHandlers.ofString());
    return new Response(r.statusCode(), JSON.readTree(r.body()));
  }

  Response post(String path, String json) throws Exception {
    HttpResponse<String> r =
        http.send(
            HttpRequest.newBuilder(base.resolve(path))
                .timeout(Duration.ofSeconds(60))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(json))
                .build(),
            HttpResponse.BodyHandlers.ofString());
    return new Response(r.statusCode(), JSON.readTree(r.body()));
  }

  /** A request with any method, body (or none) and extra headers ("Name", "value", …). */
  Response send(String method, String path, String body, String... headers) throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(base.resolve(path))
            .timeout(Duration.ofSeconds(60))
            .method(
                method,
                body == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body));
    for (int i = 0; i + 1 < headers.length; i += 2) {
      b.header(headers[i], headers[i + 1]);
    }
    HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    return new Response(r.statusCode(), JSON.readTree(r.body()));
  }

  CompletableFuture<Response> getAsync(String path) {
    return http.sendAsync(
            HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(120)).build(),
            HttpResponse.BodyHandlers.ofString())
        .thenApply(
            r -> {
              try {
                return new Response(r.statusCode(), JSON.readTree(r.body()));
              } catch (Exception e) {
                throw new IllegalStateException(e);
              }
            });
  }

  /** The plugin with this symbolic name, if listed. */
  Optional<JsonNode> plugin(String bsn) throws Exception {
    for (JsonNode p : get("/api/plugins").body()) {
      if (p.get("symbolicName").asText().equals(bsn)) {
        return Optional.of(p);
      }
    }
    return Optional.empty();
  }

  /**
   * Polls the plugin list until {@code condition} holds for {@code bsn}; returns the elapsed ms.
   */
  long await(String bsn, Predicate<Optional<JsonNode>> condition, Duration timeout)
      throws Exception {
    long start = System.nanoTime();
    long deadline = start + timeout.toNanos();
    Optional<JsonNode> last = Optional.empty();
    while (System.nanoTime() < deadline) {
      last = plugin(bsn);
      if (condition.test(last)) {
        return (System.nanoTime() - start) / 1_000_000;
      }
      Thread.sleep(50);
    }
    throw new AssertionError(
        "plugin " + bsn + " did not reach the expected state in " + timeout + "; last: " + last);
  }

  /** Polls job {@code id} until it has succeeded or failed, for at most a minute; its last view. */
  JsonNode awaitJob(String id) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (System.nanoTime() < deadline) {
      JsonNode j = get("/api/jobs/" + id).body();
      String state = j.get("state").asText();
      if (state.equals("SUCCEEDED") || state.equals("FAILED")) {
        return j;
      }
      Thread.sleep(50);
    }
    throw new AssertionError("job " + id + " did not finish in 60 s");
  }
}
