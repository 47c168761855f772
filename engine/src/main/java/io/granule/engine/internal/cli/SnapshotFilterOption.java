package io.granule.engine.internal.cli;

import io.granule.engine.internal.repo.snapshot.SnapshotFilter;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * {@code --host H --tag T…}: the snapshots a command considers. {@code latest} is then the latest
 * of them; an id given must be one of them.
 */
final class SnapshotFilterOption {
  @Option(
      names = "--host",
      paramLabel = "HOST",
      description =
          "Only snapshots of this host (with several hosts in one repository, 'latest' is then"
              + " this host's latest).")
  String host;

  @Option(
      names = "--tag",
      paramLabel = "TAG",
      description = "Only snapshots carrying this tag (repeat: all of them).")
  List<String> tags;

  SnapshotFilter filter() {
    return new SnapshotFilter(host, tags);
  }
}
