/*
 * lb_urlsign.h: the urlsign pipeline in one call: parse a URL, build the
 * canonical query, MAC it, hex it and write the signed URL (or check a
 * signature), with no allocation. lowbit.urlsign calls it; the contract
 * (message layout, canonical query, results) is documented there and in
 * spec/urlsign_spec.lua:
 *     sig = hex(HMAC-SHA256(key, host ":" path ":" exp ":" canonical_query))
 * where path is the decoded path and canonical_query is every query pair
 * but exp and sig, decoded ("+" is a space), stably sorted by key (byte
 * order; values of one key keep their order) and re-encoded as Go's
 * url.QueryEscape does ("a=1&b=x+y").
 *
 * The core handles a fast subset exactly as lowbit.url + lowbit.urlsign do
 * and refuses everything else with LB_EURL, so the caller takes its general
 * path for it (which then decides whether the URL is valid). The subset:
 *   scheme "://" host [":" digits] [path] ["?" query]
 * with a scheme of [A-Za-z][A-Za-z0-9+.-]*, a host of [A-Za-z0-9._~-]*, a
 * path starting with "/", no byte below 0x20 nor 0x7F nor "#" anywhere,
 * every "%" followed by two hex digits, and at most LB_URLSIGN_MAX_PAIRS
 * non-empty query pairs besides exp and sig.
 *
 * work is a caller scratch buffer of at least lb_urlsign_work_len(n) bytes,
 * n being the URL's length for lb_urlsign_verify, the URL's plus exp's for
 * lb_urlsign_sign, and host + path + query lengths for
 * lb_urlsign_verify_parts; nothing returned points into it.
 */
#ifndef LOWBIT_LB_URLSIGN_H
#define LOWBIT_LB_URLSIGN_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#include "lowbit/lb_hmac.h"
#endif

enum {
  LB_URLSIGN_MAX_PAIRS = 64,
  /* lb_urlsign_verify* results (>= 0): */
  LB_URLSIGN_VALID = 0,    /* the signature is right; *exp_out holds exp */
  LB_URLSIGN_BAD_SIG = 1,  /* the signature is wrong */
  LB_URLSIGN_MISSING = 2,  /* no exp or no sig, or the first one is empty */
  LB_URLSIGN_REPEATED = 3, /* exp or sig given more than once */
  LB_URLSIGN_BAD_EXP = 4   /* right signature, but exp is not all digits */
};

/* Bytes of scratch needed for an input of n bytes (5 n + 16). */
size_t lb_urlsign_work_len(size_t n);

/* Largest signed URL lb_urlsign_sign may write for a URL of n bytes and an
 * exp of exp_len bytes (4 n + exp_len + 80). */
size_t lb_urlsign_sign_max_len(size_t n, size_t exp_len);

/* Signs url[0..n): writes to out the URL with its scheme lower-cased and
 * its query replaced by the canonical query plus exp (the exp_len bytes at
 * exp, written as they are) and sig, all sorted by key. Returns the bytes
 * written; LB_EURL when the URL is outside the fast subset (nothing is
 * decided about it; out may have been written); LB_ETOOMANY for more than
 * LB_URLSIGN_MAX_PAIRS pairs; LB_ENOSPACE when work or out is too small;
 * LB_ETOOLARGE for inputs over 512 MiB;
 * LB_EINVAL for a NULL h or a NULL pointer with a non-zero length. */
ptrdiff_t lb_urlsign_sign(const lb_hmac *h, const char *url, size_t n,
                          const char *exp, size_t exp_len, char *work,
                          size_t work_len, char *out, size_t out_len);

/* Verifies a signed URL url[0..n). The signature is compared in constant
 * time (lb_hmac_verify_hex). Returns an LB_URLSIGN_* result (on
 * LB_URLSIGN_VALID, *exp_out = exp as a number; the caller compares it with
 * its clock), or LB_EURL / LB_ETOOMANY when the URL is outside the fast
 * subset (and also for a valid signature whose exp has more than 15
 * digits, so the caller's own number parsing decides), LB_ENOSPACE,
 * LB_EINVAL as lb_urlsign_sign. */
int lb_urlsign_verify(const lb_hmac *h, const char *url, size_t n, char *work,
                      size_t work_len, double *exp_out);

/* As lb_urlsign_verify for a URL given in pieces: host (with its port, as
 * signed), the decoded path (any bytes, used as they are) and the raw query
 * (without "?"). Only the query must be in the fast subset. */
int lb_urlsign_verify_parts(const lb_hmac *h, const char *host, size_t host_len,
                            const char *path, size_t path_len, const char *query,
                            size_t query_len, char *work, size_t work_len,
                            double *exp_out);

#endif
