package io.granule.engine.internal.repo.backup;

import java.util.Set;

/**
 * One damaged repository file found by verify.
 *
 * @param file the file, e.g. {@code data/3f/3fa2…}, {@code index/…}, {@code snapshots/…}
 * @param problems what is wrong with it, one message per problem
 * @param snapshots ids of the snapshots that lose data because of it
 */
public record Damage(String file, java.util.List<String> problems, Set<String> snapshots) {}
