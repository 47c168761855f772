package io.granule.engine.internal.repo.snapshot;

import java.util.ArrayList;
import java.util.List;

/**
 * Which snapshots a command considers: those of one host, and carrying every one of some tags. With
 * several hosts backing up into one repository, {@code latest} means the latest of these (and, when
 * a disk or stream is named, the latest holding it), not another host's.
 *
 * @param host the host, or null for any
 * @param tags tags a snapshot must all carry (none: any)
 */
public record SnapshotFilter(String host, List<String> tags) {
  /** Every snapshot. */
  public static final SnapshotFilter ANY = new SnapshotFilter(null, List.of());

  public SnapshotFilter {
    tags = tags == null ? List.of() : List.copyOf(tags);
  }

  /** Whether {@code m} passes. */
  public boolean matches(Manifest m) {
    return (host == null || host.equals(m.host())) && m.tags().containsAll(tags);
  }

  /** Whether this filter passes every snapshot. */
  public boolean isAny() {
    return host == null && tags.isEmpty();
  }

  /** "of host H with tags T, U", or "" for {@link #ANY}: for messages. */
  public String describe() {
    List<String> parts = new ArrayList<>();
    if (host != null) {
      parts.add("of host " + host);
    }
    if (!tags.isEmpty()) {
      parts.add((tags.size() == 1 ? "with tag " : "with tags ") + String.join(", ", tags));
    }
    return String.join(" ", parts);
  }
}
