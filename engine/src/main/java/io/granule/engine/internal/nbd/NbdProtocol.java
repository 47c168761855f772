package io.granule.engine.internal.nbd;

/**
 * Constants of the NBD protocol as written in {@code doc/proto.md} of the reference implementation
 * (NetworkBlockDevice/nbd). Numbers on the wire are big-endian. Never change a value: clients
 * depend on them.
 */
final class NbdProtocol {
  /** {@code NBDMAGIC}: the first eight bytes the server sends. */
  static final long NBDMAGIC = 0x4e42444d41474943L;

  /** {@code IHAVEOPT}: newstyle negotiation, and the prefix of every option the client sends. */
  static final long IHAVEOPT = 0x49484156454f5054L;

  /** Prefix of every option reply. */
  static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;

  static final int REQUEST_MAGIC = 0x25609513;
  static final int SIMPLE_REPLY_MAGIC = 0x67446698;
  static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

  // Handshake flags (server) and client flags.
  static final int FLAG_FIXED_NEWSTYLE = 1;
  static final int FLAG_NO_ZEROES = 1 << 1;
  static final int FLAG_C_FIXED_NEWSTYLE = 1;
  static final int FLAG_C_NO_ZEROES = 1 << 1;

  // Transmission flags.
  static final int FLAG_HAS_FLAGS = 1;
  static final int FLAG_READ_ONLY = 1 << 1;
  static final int FLAG_SEND_FLUSH = 1 << 2;
  static final int FLAG_SEND_FUA = 1 << 3;
  static final int FLAG_SEND_TRIM = 1 << 5;
  static final int FLAG_SEND_WRITE_ZEROES = 1 << 6;
  static final int FLAG_SEND_DF = 1 << 7;
  static final int FLAG_CAN_MULTI_CONN = 1 << 8;

  // Options.
  static final int OPT_EXPORT_NAME = 1;
  static final int OPT_ABORT = 2;
  static final int OPT_LIST = 3;
  static final int OPT_INFO = 6;
  static final int OPT_GO = 7;
  static final int OPT_STRUCTURED_REPLY = 8;
  static final int OPT_LIST_META_CONTEXT = 9;
  static final int OPT_SET_META_CONTEXT = 10;

  // Option reply types.
  static final int REP_ACK = 1;
  static final int REP_SERVER = 2;
  static final int REP_INFO = 3;
  static final int REP_META_CONTEXT = 4;
  static final int REP_ERR_UNSUP = (1 << 31) + 1;
  static final int REP_ERR_INVALID = (1 << 31) + 3;
  static final int REP_ERR_UNKNOWN = (1 << 31) + 6;
  static final int REP_ERR_TOO_BIG = (1 << 31) + 9;

  // Information types of NBD_OPT_INFO and NBD_OPT_GO.
  static final int INFO_EXPORT = 0;
  static final int INFO_NAME = 1;
  static final int INFO_BLOCK_SIZE = 3;

  // Commands.
  static final int CMD_READ = 0;
  static final int CMD_WRITE = 1;
  static final int CMD_DISC = 2;
  static final int CMD_FLUSH = 3;
  static final int CMD_TRIM = 4;
  static final int CMD_WRITE_ZEROES = 6;
  static final int CMD_BLOCK_STATUS = 7;

  // Command flags.
  static final int CMD_FLAG_FUA = 1;
  static final int CMD_FLAG_NO_HOLE = 1 << 1;
  static final int CMD_FLAG_DF = 1 << 2;
  static final int CMD_FLAG_REQ_ONE = 1 << 3;
  static final int CMD_FLAG_FAST_ZERO = 1 << 4;

  // Structured replies.
  static final int REPLY_FLAG_DONE = 1;
  static final int REPLY_TYPE_NONE = 0;
  static final int REPLY_TYPE_OFFSET_DATA = 1;
  static final int REPLY_TYPE_BLOCK_STATUS = 5;
  static final int REPLY_TYPE_ERROR = (1 << 15) + 1;

  // base:allocation status bits.
  static final String BASE_ALLOCATION = "base:allocation";
  static final int STATE_HOLE = 1;
  static final int STATE_ZERO = 1 << 1;

  // Error values.
  static final int EPERM = 1;
  static final int EIO = 5;
  static final int EINVAL = 22;
  static final int ENOSPC = 28;
  static final int ENOTSUP = 95;

  private NbdProtocol() {}
}
