package io.granule.engine.internal.rest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.core.JsonProcessingException;
import io.granule.engine.internal.cli.Json;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Request bodies are read strictly: a value of the wrong JSON type is refused, not coerced. */
class RequestBodyTest {
  private static ApiServlet.BackupBody backup(String json) throws Exception {
    return Json.strictReader(ApiServlet.BackupBody.class).readValue(json);
  }

  @Test
  void valuesOfTheirOwnTypeAreRead() throws Exception {
    ApiServlet.BackupBody b =
        backup(
            "{\"repo\":\"/r\",\"disks\":[{\"path\":\"/d\"}],\"tags\":[\"a\"],"
                + "\"freezeTimeoutSeconds\":20,\"changeTracking\":true}");
    assertThat(b.freezeTimeoutSeconds()).isEqualTo(20L);
    assertThat(b.changeTracking()).isTrue();
    assertThat(b.tags()).isEqualTo(List.of("a"));
    assertThat(b.host()).isNull();
  }

  @Test
  void valuesOfAnotherTypeAreRefused() {
    for (String field :
        List.of(
            "\"freezeTimeoutSeconds\":\"20\"",
            "\"freezeTimeoutSeconds\":1.5",
            "\"freezeTimeoutSeconds\":true",
            "\"freezeTimeoutSeconds\":\"\"",
            "\"changeTracking\":\"true\"",
            "\"changeTracking\":1",
            "\"host\":5",
            "\"host\":1.5",
            "\"host\":false",
            "\"tags\":\"one\"",
            "\"tags\":[7]")) {
      assertThatThrownBy(() -> backup("{\"repo\":\"/r\"," + field + "}"))
          .as(field)
          .isInstanceOf(JsonProcessingException.class);
    }
    assertThatThrownBy(
            () ->
                Json.strictReader(ApiServlet.VerifyBody.class)
                    .readValue("{\"repo\":\"/r\",\"readData\":\"false\"}"))
        .isInstanceOf(JsonProcessingException.class);
    assertThatThrownBy(
            () ->
                Json.strictReader(ApiServlet.TableRestoreBody.class)
                    .readValue("{\"options\":{\"jobs\":4}}"))
        .isInstanceOf(JsonProcessingException.class);
  }

  @Test
  void trailingTokensAndRepeatedKeysAreRefused() {
    assertThatThrownBy(() -> backup("{\"repo\":\"/r\"} x"))
        .isInstanceOf(JsonProcessingException.class);
    assertThatThrownBy(() -> backup("{\"repo\":\"/r\",\"repo\":\"/s\"}"))
        .isInstanceOf(JsonProcessingException.class);
  }
}
