package io.granule.engine.internal.repo.blob;

/** What {@link BlobStore#stat} knows about a blob: its name and its size in bytes. */
public record BlobInfo(BlobName name, long size) {}
