package io.granule.engine.spi;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One logical object of an application in a snapshot: a database, schema, table, index, sequence,
 * view, mailbox or folder.
 *
 * @param id the object's id within its plugin, unique in the snapshot and what {@code granule
 *     restore table} takes after the plugin's name and a colon, e.g. {@code shop/public.orders}
 * @param kind what it is, lowercase: {@code database}, {@code schema}, {@code table}, {@code
 *     partitioned-table}, {@code toast}, {@code index}, {@code sequence}, {@code view}, {@code
 *     mailbox}, {@code folder}
 * @param name its name as a person knows it, e.g. {@code public.orders}
 * @param parent the id of the object that contains it (the database of a table, the table of an
 *     index), or null
 * @param size its size on disk in bytes, -1 if unknown
 * @param rows the estimated number of rows or messages, -1 if unknown
 * @param files the files that hold it, relative to the instance's data directory
 * @param attributes what restore needs besides (relfilenode, OID, engine, tablespace)
 */
public record CatalogEntry(
    String id,
    String kind,
    String name,
    String parent,
    long size,
    long rows,
    List<String> files,
    Map<String, String> attributes) {

  public CatalogEntry {
    Objects.requireNonNull(kind, "kind");
    Objects.requireNonNull(name, "name");
    if (id == null || id.isEmpty() || id.contains("\n")) {
      throw new IllegalArgumentException("invalid catalog id '" + id + "'");
    }
    files = files == null ? List.of() : List.copyOf(files);
    attributes = attributes == null ? Map.of() : Map.copyOf(attributes);
  }
}
