package io.granule.engine.internal.repo.backup;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.granule.engine.internal.repo.PackId;
import io.granule.engine.internal.repo.blob.BlobInfo;
import io.granule.engine.internal.repo.blob.BlobName;
import io.granule.engine.internal.repo.blob.BlobType;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

class DataSubsetTest {
  /** {@code n} packs with random ids, of {@code size} bytes each. */
  private static List<BlobInfo> packs(int n, long size) {
    List<BlobInfo> out = new ArrayList<>();
    Random r = new Random(n);
    for (int i = 0; i < n; i++) {
      out.add(
          new BlobInfo(
              new BlobName(BlobType.PACK, new PackId(r.nextLong(), r.nextLong()).toString()),
              size));
    }
    return out;
  }

  @Test
  void parsesGroupsSharesAndSizesAndSaysThemBackAsGiven() {
    assertThat(DataSubset.parse("1/7")).hasToString("1/7");
    assertThat(DataSubset.parse(" 7/7 ")).hasToString("7/7");
    assertThat(DataSubset.parse("5%")).hasToString("5%");
    assertThat(DataSubset.parse("2.5%")).hasToString("2.5%");
    assertThat(DataSubset.parse("10G")).hasToString("10G");
    assertThat(DataSubset.parse("10GiB")).hasToString("10G");
    assertThat(DataSubset.parse("1536M")).hasToString("1536M");
    assertThat(DataSubset.parse("1000")).hasToString("1000");
    assertThat(((DataSubset.Bytes) DataSubset.parse("3k")).bytes).isEqualTo(3072);
    assertThat(DataSubset.parse("1/1").all()).isTrue();
    assertThat(DataSubset.parse("100%").all()).isTrue();
    assertThat(DataSubset.parse("1/2").all()).isFalse();
    assertThat(DataSubset.ALL.all()).isTrue();
    assertThat(DataSubset.NONE.all()).isFalse();
  }

  @Test
  void refusesWhatIsNotASubsetNamingTheValueAndTheForms() {
    for (String bad :
        List.of("0/7", "8/7", "1/0", "0%", "101%", "0", "0G", "abc", "1/7/2", "-5%")) {
      assertThatThrownBy(() -> DataSubset.parse(bad))
          .as(bad)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("'" + bad + "'");
    }
    assertThatThrownBy(() -> DataSubset.parse("soon"))
        .hasMessageContaining("N/T")
        .hasMessageContaining("P%")
        .hasMessageContaining("10G");
    assertThatThrownBy(() -> DataSubset.parse("99999999T")).hasMessageContaining("'99999999T'");
  }

  @Test
  void theGroupsOfTPartitionThePacksAndPickTheSamePacksEachTime() {
    List<BlobInfo> packs = packs(700, 1);
    Set<BlobName> seen = new HashSet<>();
    int smallest = Integer.MAX_VALUE;
    for (int n = 1; n <= 7; n++) {
      Set<BlobName> group = DataSubset.parse(n + "/7").select(packs, new Random(n));
      assertThat(DataSubset.parse(n + "/7").select(packs, new Random(100 + n)))
          .as("the same packs whatever the random source")
          .isEqualTo(group);
      for (BlobName p : group) {
        assertThat(seen.add(p)).as("%s in two groups", p).isTrue();
      }
      smallest = Math.min(smallest, group.size());
    }
    assertThat(seen).hasSize(packs.size());
    assertThat(smallest).as("random ids: groups about equal").isGreaterThan(60);
  }

  @Test
  void aFileThatIsNotAPackIdIsInEveryGroup() {
    List<BlobInfo> packs = new ArrayList<>(packs(10, 1));
    BlobName odd = new BlobName(BlobType.PACK, "not-a-pack");
    packs.add(new BlobInfo(odd, 1));
    for (int n = 1; n <= 3; n++) {
      assertThat(DataSubset.parse(n + "/3").select(packs, new Random())).contains(odd);
    }
  }

  @Test
  void aShareIsThatManyRandomPacksRoundedUp() {
    List<BlobInfo> packs = packs(200, 1);
    Set<BlobName> a = DataSubset.parse("5%").select(packs, new Random(1));
    Set<BlobName> b = DataSubset.parse("5%").select(packs, new Random(2));
    assertThat(a).hasSize(10);
    assertThat(b).hasSize(10).isNotEqualTo(a);
    assertThat(DataSubset.parse("0.1%").select(packs, new Random(1))).hasSize(1);
    assertThat(DataSubset.parse("100%").select(packs, new Random(1))).hasSize(200);
  }

  @Test
  void aSizeIsRandomPacksHoldingAtMostThatManyBytes() {
    List<BlobInfo> packs = packs(100, 16 << 20);
    assertThat(DataSubset.parse("100M").select(packs, new Random(1))).hasSize(6); // 96 <= 100
    assertThat(DataSubset.parse("96M").select(packs, new Random(1))).hasSize(6);
    assertThat(DataSubset.parse("95M").select(packs, new Random(1))).hasSize(5);
    assertThat(DataSubset.parse("1").select(packs, new Random(1))).as("at least one").hasSize(1);
    List<BlobInfo> mixed = new ArrayList<>(packs(3, 64 << 20));
    mixed.addAll(packs(5, 1 << 20));
    Set<BlobName> fit = DataSubset.parse("8M").select(mixed, new Random(3));
    assertThat(fit).as("the large packs passed over, the small ones taken").hasSize(5);
    assertThat(DataSubset.parse("10T").select(packs, new Random(1))).hasSize(100);
    assertThat(DataSubset.NONE.select(packs, new Random(1))).isEmpty();
    assertThat(DataSubset.ALL.select(packs, new Random(1))).hasSize(100);
  }
}
