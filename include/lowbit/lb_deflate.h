/*
 * lb_deflate.h: RFC 7692 permessage-deflate on zlib (and lb_inflate for
 * received messages when the peer uses no context takeover and a 32 KiB
 * window: each is then decoded whole, several times faster).
 *
 * - A context (lb_deflate_new) holds one compressor (our messages) and one
 *   decompressor (the peer's), each with its window size and context
 *   takeover setting. A direction with context takeover owns its zlib
 *   stream, allocated once in lb_deflate_new (about 260 KiB to compress,
 *   40-70 KiB to decompress); a direction without takes a stream from a
 *   per-thread pool for the length of one call and gives it back, so an
 *   idle context without takeover holds a few dozen bytes, and the streams
 *   are shared by every context of the thread. No call allocates per
 *   message except by growing the caller's lb_buf (and the pool's first
 *   use of a stream kind).
 * - Negotiation: lb_deflate_parse_offer() reads one element of a
 *   Sec-WebSocket-Extensions value, lb_deflate_accept_offer() picks the
 *   server's answer, lb_deflate_format_params() writes it.
 *
 * A context is not thread-safe; use one per connection (the pools are
 * per thread: a context may move between threads between calls).
 */
#ifndef LOWBIT_LB_DEFLATE_H
#define LOWBIT_LB_DEFLATE_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h" /* lb_buf (the FFI gets it from lb_base.h itself) */
#endif

enum {
  /* lb_deflate_parse_offer() flags: who sent the element */
  LB_DEFLATE_CLIENT_OFFER = 0x1, /* a client's offer (valueless client_max_window_bits allowed) */
  LB_DEFLATE_SERVER_RESPONSE = 0x2,

  /* lb_deflate_parse_offer() result for an element naming another extension */
  LB_DEFLATE_OTHER = 1,

  /* lb_deflate_params.client_max_window_bits: present without a value */
  LB_DEFLATE_BITS_NOVALUE = -1,

  /* longest lb_deflate_format_params() output */
  LB_DEFLATE_PARAMS_MAX = 128
};

/* Parameters of one offer or response (RFC 7692 7.1). Zero-filled = the
 * bare "permessage-deflate". Window bits: 0 = parameter absent, else 8..15. */
typedef struct lb_deflate_params {
  int32_t server_no_context_takeover; /* 0/1 */
  int32_t client_no_context_takeover; /* 0/1 */
  int32_t server_max_window_bits;     /* 0 or 8..15 */
  int32_t client_max_window_bits;     /* 0, 8..15, or LB_DEFLATE_BITS_NOVALUE */
} lb_deflate_params;

/* Opaque: zlib streams and lb_inflate state, owned by the context. */
typedef struct lb_deflate lb_deflate;

/*
 * Creates a context. deflate_bits / inflate_bits: window bits 8..15 for our
 * compressor and the peer's data (8 is run as 9: zlib has no 256-byte raw
 * window; 0 means 15). *_no_takeover: 1 resets that direction's stream for
 * every message. level: zlib level -1..9 (-1 = zlib's default). Returns NULL
 * on invalid arguments or when memory runs out. Free with lb_deflate_free.
 */
lb_deflate *lb_deflate_new(int deflate_bits, int deflate_no_takeover,
                           int inflate_bits, int inflate_no_takeover, int level);

/* lb_deflate_new for agreed parameters `p` (the server's response), seen from
 * the server (is_server = 1: we compress with server_*, inflate client_*) or
 * the client (the reverse). NULL as lb_deflate_new. */
lb_deflate *lb_deflate_new_from_params(const lb_deflate_params *p, int is_server, int level);

/* Releases the context; NULL is allowed. */
void lb_deflate_free(lb_deflate *ctx);

/* Frees the calling thread's pooled streams (they are made again on
 * demand); for a thread about to end, and for leak checkers. */
void lb_deflate_pool_clear(void);

/*
 * Compresses one whole message in[0..n) and appends the payload to *out:
 * deflate with Z_SYNC_FLUSH, minus the trailing 00 00 ff ff (RFC 7692
 * 7.2.1); an empty message gives the single byte 00. The compressor is reset
 * first when the context was made with no context takeover for it.
 * Returns the bytes appended, LB_ENOMEM (out unchanged), or LB_EINTERNAL
 * when zlib fails (the stream is reset).
 */
ptrdiff_t lb_deflate_compress(lb_deflate *ctx, const uint8_t *in, size_t n, lb_buf *out);

/*
 * Decompresses one whole received message payload in[0..n) (RFC 7692 7.2.2:
 * the 00 00 ff ff tail is appended internally) and appends the result to
 * *out. A message that ends the deflate stream (BFINAL) is accepted; bytes
 * after the end of the stream are ignored. At most `limit` bytes are
 * appended (0 = no limit): out->len grows by at most limit, so a deflate
 * bomb costs no more memory than the limit allows.
 * Returns the bytes appended, or (out->len restored, the decompressor reset)
 * LB_ETOOLARGE as soon as the output would exceed limit, LB_EDEFLATE for
 * corrupt or truncated data, LB_ENOMEM.
 */
ptrdiff_t lb_deflate_decompress(lb_deflate *ctx, const uint8_t *in, size_t n,
                                lb_buf *out, size_t limit);

/*
 * Parses the first extension element of s[0..len), a Sec-WebSocket-Extensions
 * value such as "permessage-deflate; client_max_window_bits, x-foo"
 * (RFC 6455 9.1 grammar, RFC 7692 7.1 parameters). *consumed is set to the
 * bytes up to and including the comma that ends the element (len when it is
 * the last one), so a caller steps through the offers in order.
 * Returns 0 for a valid permessage-deflate element (*p filled),
 * LB_DEFLATE_OTHER for an element naming another extension (*p zeroed), or
 * LB_EHEADER for a permessage-deflate element with an unknown, duplicated
 * or invalid parameter, or with a syntax error (the caller tries the next
 * offer). Window bits are decimal 8..15 without leading zeros, bare or
 * quoted; a valueless client_max_window_bits is allowed only with
 * LB_DEFLATE_CLIENT_OFFER. When the element itself cannot be delimited (an
 * unterminated quoted string), *consumed is len.
 */
int lb_deflate_parse_offer(lb_deflate_params *p, const char *s, size_t len,
                           int flags, size_t *consumed);

/*
 * Server side: answers a client offer. `prefs` holds the server's wishes:
 * server_no_context_takeover (1 = we reset our compressor per message),
 * client_no_context_takeover (1 = ask the client to), server_max_window_bits
 * (our largest window, 0 = 15), client_max_window_bits (the window we want
 * the client to use, 0 = no preference). Fills *resp with parameters that
 * honour the offer (RFC 7692 7.1.1-7.1.2). Returns 0, or LB_EINVAL when the
 * offer cannot be accepted (it asks for a 256-byte server window, which
 * zlib cannot produce).
 */
int lb_deflate_accept_offer(const lb_deflate_params *offer, const lb_deflate_params *prefs,
                            lb_deflate_params *resp);

/*
 * Writes "permessage-deflate" and the parameters of *p ("; name" or
 * "; name=N") into dst[0..cap), no NUL. Returns the length
 * (<= LB_DEFLATE_PARAMS_MAX), LB_ENOSPACE, or LB_EINVAL for window bits
 * outside 8..15 (LB_DEFLATE_BITS_NOVALUE is written as a valueless
 * client_max_window_bits, as in a client offer).
 */
ptrdiff_t lb_deflate_format_params(char *dst, size_t cap, const lb_deflate_params *p);

#endif
