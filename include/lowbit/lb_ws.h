/*
 * lb_ws.h: RFC 6455 WebSocket framing, sans-I/O and allocation-free.
 *
 * - Frame headers: lb_ws_parse_header() reads one header (2..14 bytes) and
 *   checks every rule that can be judged from it; lb_ws_build_header() writes
 *   one. Payload bytes are never copied: the caller reads header_len bytes,
 *   then payload_len bytes, and unmasks them with lb_ws_mask().
 * - Messages: lb_ws_msg_frame() applies the fragmentation rules (RFC 6455
 *   5.4) and the RSV1 rule of permessage-deflate (RFC 7692 6) frame by frame.
 * - UTF-8: lb_utf8_validate() checks text incrementally, a code point may be
 *   split across calls (RFC 6455 8.1, RFC 3629).
 * - Close frames: body check and build, close-code validity (RFC 6455 7.4).
 * - Handshake: Sec-WebSocket-Accept and Sec-WebSocket-Key helpers (RFC 6455
 *   4.2.2, 4.1).
 *
 * Every function is safe to call from several threads on distinct state.
 */
#ifndef LOWBIT_LB_WS_H
#define LOWBIT_LB_WS_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#endif

enum {
  /* opcodes (RFC 6455 5.2) */
  LB_WS_OP_CONT = 0x0,
  LB_WS_OP_TEXT = 0x1,
  LB_WS_OP_BINARY = 0x2,
  LB_WS_OP_CLOSE = 0x8,
  LB_WS_OP_PING = 0x9,
  LB_WS_OP_PONG = 0xA,

  /* lb_ws_parse_header() flags */
  LB_WS_SERVER = 0x01,     /* we are the server: received frames must be masked */
  LB_WS_CLIENT = 0x02,     /* we are the client: received frames must not be masked */
  LB_WS_LAX_LENGTH = 0x04, /* accept non-minimal length encodings */
  LB_WS_RSV3 = 0x10,       /* the RSV bits a negotiated extension allows; */
  LB_WS_RSV2 = 0x20,       /* same values as in the first header byte */
  LB_WS_RSV1 = 0x40,       /* (permessage-deflate uses RSV1) */

  LB_WS_MAX_HEADER = 14,          /* 2 + 8 (64-bit length) + 4 (mask key) */
  LB_WS_MAX_CONTROL_PAYLOAD = 125,
  LB_WS_MAX_CLOSE_REASON = 123,
  LB_WS_ACCEPT_LEN = 28,          /* base64 of a 20-byte SHA-1 */
  LB_WS_KEY_LEN = 24,             /* base64 of 16 bytes */

  /* close codes (RFC 6455 7.4.1) */
  LB_WS_CLOSE_NORMAL = 1000,
  LB_WS_CLOSE_GOING_AWAY = 1001,
  LB_WS_CLOSE_PROTOCOL_ERROR = 1002,
  LB_WS_CLOSE_UNSUPPORTED = 1003,
  LB_WS_CLOSE_NO_STATUS = 1005,   /* never on the wire */
  LB_WS_CLOSE_ABNORMAL = 1006,    /* never on the wire */
  LB_WS_CLOSE_INVALID_DATA = 1007,
  LB_WS_CLOSE_POLICY = 1008,
  LB_WS_CLOSE_TOO_BIG = 1009,
  LB_WS_CLOSE_EXTENSION = 1010,
  LB_WS_CLOSE_INTERNAL = 1011
};

/* One parsed frame header. All fields are plain values (no views). */
typedef struct lb_ws_header {
  uint64_t payload_len; /* payload bytes that follow the header */
  uint8_t fin;          /* 1 when FIN is set */
  uint8_t rsv;          /* RSV bits as in byte 0: LB_WS_RSV1|RSV2|RSV3 */
  uint8_t opcode;       /* LB_WS_OP_* */
  uint8_t masked;       /* 1 when a mask key is present */
  uint8_t mask[4];      /* the key when masked, else zeros */
  uint8_t header_len;   /* 2..14, same as the return value */
  uint8_t pad[7];
} lb_ws_header;

/*
 * Parses one frame header from in[0..len). Stateless: call again with more
 * bytes after LB_EAGAIN (at most LB_WS_MAX_HEADER are ever needed). Checks,
 * as soon as the bytes that decide them are present, in this order:
 *   LB_EOPCODE   reserved opcode 0x3-0x7 or 0xB-0xF
 *   LB_ERSV      an RSV bit not allowed by `flags` (LB_WS_RSV1..3)
 *   LB_EMASK     unmasked frame with LB_WS_SERVER, masked one with LB_WS_CLIENT
 *   LB_ECONTROL  control frame without FIN or with more than 125 bytes
 *   LB_EPROTO    64-bit length with the top bit set, or a length not in its
 *                minimal form (unless LB_WS_LAX_LENGTH)
 *   LB_ETOOLARGE payload_len > max_payload (max_payload 0 means no limit)
 * Returns the header length (2..14) with *h filled, LB_EAGAIN when the header
 * is incomplete (*h undefined), or one of the errors above.
 */
ptrdiff_t lb_ws_parse_header(lb_ws_header *h, const uint8_t *in, size_t len,
                             int flags, uint64_t max_payload);

/* The close code to send when failing the connection for error `err`:
 * 1002 for protocol errors (EOPCODE, ERSV, EMASK, ECONTROL, EFRAGMENT,
 * ECLOSECODE, EPROTO and the rest of the protocol range except below), 1007
 * for EUTF8 and EDEFLATE, 1009 for ETOOLARGE, 1000 for err >= 0, 1011 for
 * anything else. */
int lb_ws_close_code_for(int err);

/* Number of bytes lb_ws_build_header() writes for these arguments (2..14). */
int lb_ws_header_len(int mask, uint64_t payload_len);

/*
 * Writes a frame header with the minimal length encoding into dst[0..cap).
 * `mask` nonzero adds the 4-byte `key` (which must then be non-NULL); rsv1
 * sets RSV1. Returns the bytes written (2..14), LB_ENOSPACE when cap is too
 * small (nothing written), LB_EINVAL for an opcode > 15 or reserved, a
 * payload_len >= 2^63, a NULL key with mask, or a control frame that is not
 * FIN or longer than 125 bytes.
 */
ptrdiff_t lb_ws_build_header(uint8_t *dst, size_t cap, int fin, int rsv1,
                             int opcode, int mask, const uint8_t key[4],
                             uint64_t payload_len);

/*
 * XORs data[0..n) with the mask key in place (masking and unmasking are the
 * same). `offset` is the position of data[0] within the frame payload, so a
 * payload that arrives in pieces is unmasked piece by piece.
 */
void lb_ws_mask(uint8_t *data, size_t n, const uint8_t key[4], size_t offset);

/* Fills dst[0..n) from the OpenSSL CSPRNG (for mask keys). Returns 0, or
 * LB_EINTERNAL when the generator fails. */
int lb_ws_random(uint8_t *dst, size_t n);

/*
 * Per-connection message state for received frames; zero-filled = no open
 * message. `opcode` and `compressed` describe the current (or last) data
 * message and stay valid after its final frame.
 */
typedef struct lb_ws_msg {
  uint64_t len;       /* payload bytes of the current data message so far */
  uint8_t open;       /* 1 while a fragmented data message awaits its FIN */
  uint8_t opcode;     /* LB_WS_OP_TEXT or LB_WS_OP_BINARY */
  uint8_t compressed; /* 1 when the message's first frame had RSV1 */
  uint8_t pad[5];
} lb_ws_msg;

/*
 * Applies one received frame header to the message state (RFC 6455 5.4,
 * RFC 7692 6.1). Returns the frame's message opcode: for a data frame
 * (including a continuation) the opcode of the message it belongs to, for a
 * control frame its own opcode. Errors (the state is unchanged then):
 *   LB_EFRAGMENT continuation without an open message, or a new TEXT/BINARY
 *                frame while one is open
 *   LB_ERSV      RSV1 on a control frame or a continuation frame
 *   LB_ETOOLARGE the data message's payload would exceed `limit` (0 = none)
 * Whether RSV1 is allowed at all is decided by lb_ws_parse_header's flags.
 */
int lb_ws_msg_frame(lb_ws_msg *m, const lb_ws_header *h, uint64_t limit);

/* Streaming UTF-8 validator state; zero-filled = at a code point boundary. */
typedef struct lb_utf8_state {
  uint32_t state;
} lb_utf8_state;

/*
 * Validates p[0..n) as the continuation of the text seen so far (RFC 3629:
 * no overlong forms, no surrogates U+D800-DFFF, nothing above U+10FFFF). A
 * code point may be split across calls. Returns 0 while valid so far, or
 * LB_EUTF8 as soon as an invalid byte is seen; the state then stays invalid.
 */
int lb_utf8_validate(lb_utf8_state *s, const uint8_t *p, size_t n);

/* At the end of the text: 0 when it ended on a code point boundary, LB_EUTF8
 * when it was invalid or ends inside a sequence. */
int lb_utf8_finish(const lb_utf8_state *s);

/* One-shot check of a whole text: 0 or LB_EUTF8. */
int lb_utf8_check(const uint8_t *p, size_t n);

/* 1 when `code` may appear in a received Close frame (1000-1003, 1007-1013,
 * 3000-4999), else 0. */
int lb_ws_close_code_valid(int code);

/*
 * Checks a received Close body p[0..n) (RFC 6455 5.5.1, 7.4). Returns the
 * close code; LB_WS_CLOSE_NO_STATUS (1005) for an empty body; LB_EPROTO for
 * a 1-byte body; LB_ECONTROL for more than 125 bytes; LB_ECLOSECODE for a
 * code that is not valid on the wire; LB_EUTF8 when the reason (p + 2) is
 * not valid UTF-8.
 */
int lb_ws_check_close_payload(const uint8_t *p, size_t n);

/*
 * Writes a Close body (2-byte code + reason) into dst[0..cap). Returns the
 * bytes written (2 + reason_len), LB_ENOSPACE, LB_EINVAL when the code is
 * not valid to send or reason_len > 123, LB_EUTF8 for an invalid reason.
 */
ptrdiff_t lb_ws_build_close(uint8_t *dst, size_t cap, int code,
                            const char *reason, size_t reason_len);

/*
 * Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key ..
 * "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) into out[0..28) (no NUL).
 * Returns 28, LB_EINVAL for a key longer than 64 bytes, LB_EINTERNAL when
 * SHA-1 fails.
 */
int lb_ws_accept_key(const char *key, size_t len, char out[28]);

/* 1 when key[0..len) is the base64 encoding of exactly 16 bytes (24 chars,
 * standard alphabet, "==" padding), else 0. */
int lb_ws_client_key_valid(const char *key, size_t len);

/* Writes a fresh random Sec-WebSocket-Key into out[0..24) (no NUL). Returns
 * 24, or LB_EINTERNAL when the CSPRNG fails. */
int lb_ws_client_key(char out[24]);

#endif
