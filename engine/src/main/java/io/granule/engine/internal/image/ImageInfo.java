package io.granule.engine.internal.image;

/**
 * What {@code granule image info} reports about a disk image.
 *
 * @param path the file
 * @param format the format that reads it
 * @param virtualSize the disk's size as the guest sees it
 * @param allocatedBytes bytes the image maps (what a backup reads at most)
 * @param fileSize the file's size on the host
 * @param plugin the plugin that read it: symbolic name and version
 */
public record ImageInfo(
    String path,
    String format,
    long virtualSize,
    long allocatedBytes,
    long fileSize,
    String plugin) {}
