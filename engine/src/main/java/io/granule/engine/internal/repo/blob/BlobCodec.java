package io.granule.engine.internal.repo.blob;

/**
 * A reversible transform applied to what the repository stores: to each chunk record of a pack
 * (after compression) and to the whole content of index, fixed-index and snapshot blobs (the config
 * blob is never transformed: it says how to read the rest). The default is {@link #IDENTITY};
 * encryption (authenticated, with its own nonce inside the output) plugs in here without any change
 * to the pack, index or snapshot formats, which only ever see the encoded bytes as opaque records.
 *
 * <p>Implementations are thread-safe. {@link #decode} throws {@link IllegalArgumentException} when
 * its input is not something {@link #encode} produced (e.g. authentication fails).
 */
public interface BlobCodec {

  /** The codec that stores bytes as they are. */
  BlobCodec IDENTITY =
      new BlobCodec() {
        @Override
        public byte[] encode(BlobName name, byte[] plain) {
          return plain;
        }

        @Override
        public byte[] decode(BlobName name, byte[] stored) {
          return stored;
        }
      };

  /** Transforms {@code plain}, a record of blob {@code name}, into what is stored. */
  byte[] encode(BlobName name, byte[] plain);

  /** Inverts {@link #encode}. */
  byte[] decode(BlobName name, byte[] stored);
}
