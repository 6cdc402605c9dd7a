/*
 * lb_hmac.h: HMAC-SHA256 with a precomputed key, SHA-256 and SHA-1, hex.
 * Used by urlsign: sig = hex(HMAC-SHA256(key, host ":" path ":" exp ":"
 * canonical_query)), where the message is passed as parts so nobody has to
 * concatenate it.
 *
 * An lb_hmac holds the SHA-256 states after the inner and outer key blocks
 * (RFC 2104: H(K ^ opad, H(K ^ ipad, m))), so each MAC costs only the
 * message's blocks plus one outer block: the key is never re-hashed. The
 * state is read-only after lb_hmac_new, so one lb_hmac may be used from
 * several threads at once. Nothing on the per-message path allocates.
 *
 * Signatures in hex are lower-case: lb_hex_encode writes lower-case and
 * lb_hmac_verify_hex accepts lower-case only (an upper-case signature is
 * rejected like any other wrong one).
 */
#ifndef LOWBIT_LB_HMAC_H
#define LOWBIT_LB_HMAC_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

typedef struct lb_hmac lb_hmac;

/* One piece of a message: len bytes at ptr (ptr may be NULL when len is 0). */
typedef struct lb_hmac_part {
  const uint8_t *ptr;
  size_t len;
} lb_hmac_part;

enum {
  LB_SHA256_LEN = 32,
  LB_SHA1_LEN = 20,
  LB_HMAC_SHA256_LEN = 32,
  LB_HMAC_SHA256_HEX_LEN = 64
};

/* Creates a keyed HMAC-SHA256 state. The key bytes are used during the call
 * only (the caller's buffer is not kept; the state holds derived hash
 * states, wiped by lb_hmac_free). Returns NULL when len is 0 (an empty key
 * is refused as a configuration error), key is NULL, or memory runs out. */
lb_hmac *lb_hmac_new(const uint8_t *key, size_t len);

/* Wipes and frees the state; NULL is ignored. */
void lb_hmac_free(lb_hmac *h);

/* out = HMAC-SHA256(key, msg[0..n)). msg may be NULL when n is 0.
 * Returns 0, or LB_EINVAL when h is NULL or msg is NULL with n > 0. */
int lb_hmac_sha256(const lb_hmac *h, const void *msg, size_t n, uint8_t out[32]);

/* out = HMAC-SHA256(key, parts[0] || parts[1] || ... || parts[nparts-1]).
 * Returns 0, or LB_EINVAL when h is NULL, parts is NULL with nparts > 0, or
 * a part has a NULL ptr with len > 0 (out is not written then). */
int lb_hmac_sha256_parts(const lb_hmac *h, const lb_hmac_part *parts,
                         size_t nparts, uint8_t out[32]);

/* Checks a hex signature of the message made of parts, in constant time:
 * the MAC is computed, hex-encoded (lower-case) and compared with sig_hex
 * by lb_ct_equal, so the time does not depend on where the signatures
 * differ, nor on whether sig_hex holds non-hex characters. Returns 1 when
 * sig_hex is the right signature (64 lower-case hex digits), 0 when it is
 * not (including a wrong length, which is public and rejected at once),
 * LB_EINVAL for the argument errors of lb_hmac_sha256_parts. */
int lb_hmac_verify_hex(const lb_hmac *h, const lb_hmac_part *parts,
                       size_t nparts, const char *sig_hex, size_t sig_len);

/* Writes 2*n lower-case hex digits of src to dst (no NUL terminator) and
 * returns 2*n. The time does not depend on the bytes' values (no table
 * lookups), so it may encode secrets. */
size_t lb_hex_encode(const uint8_t *src, size_t n, char *dst);

/* One-shot digests. Return 0, LB_EINVAL when p is NULL with n > 0, or
 * LB_EINTERNAL if OpenSSL fails. */
int lb_sha256(const void *p, size_t n, uint8_t out[32]);
int lb_sha1(const void *p, size_t n, uint8_t out[20]);

#endif
