/*
 * lb_http1.h: HTTP/1.1 message heads and chunked bodies (RFC 9112), sans-I/O
 * and allocation-free.
 *
 * - Request heads: lb_http1_parse_request() checks the grammar with llhttp
 *   and then applies the framing and Host rules of
 *   conformance/http1.md itself (Host, Content-Length, Transfer-Encoding,
 *   Connection, Expect, Upgrade), so the caller gets one verdict: a complete
 *   head with its body framing, "need more input", or an error that
 *   lb_http1_status_for() turns into the status to answer (400/431/501/505).
 * - Response heads: lb_http1_parse_response() for the client side.
 * - Chunked bodies: lb_http1_chunked_decode() reports data spans inside the
 *   caller's input (no copy) and validates sizes, CRLFs and trailers.
 * - Writing: lb_http1_write_response_head() with built-in reason phrases and
 *   response-splitting checks; lb_http1_format_date() (IMF-fixdate).
 *
 * Parsed fields are (pointer, length) views into the caller's input buffer:
 * they stay valid as long as that buffer is neither freed, moved nor
 * overwritten. A pointer field is NULL when the element is absent.
 * Every function is safe to call from several threads on distinct state.
 */
#ifndef LOWBIT_LB_HTTP1_H
#define LOWBIT_LB_HTTP1_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#endif

enum {
  /* body_kind: how the body that follows a head is delimited */
  LB_HTTP1_BODY_NONE = 0,    /* no body */
  LB_HTTP1_BODY_LENGTH = 1,  /* content_length bytes */
  LB_HTTP1_BODY_CHUNKED = 2, /* chunked: use lb_http1_chunked_decode() */
  LB_HTTP1_BODY_CLOSE = 3,   /* responses only: until the peer closes */

  /* max_header_bytes == 0 selects this default (1 MiB, like Go's) */
  LB_HTTP1_DEFAULT_MAX_HEADER_BYTES = 1048576,
  /* a chunk-size line (size, extensions) must be shorter than this */
  LB_HTTP1_MAX_CHUNK_LINE = 4096,
  /* limit on the whole trailer section of a chunked body */
  LB_HTTP1_MAX_TRAILER_BYTES = 65536,
  /* length of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" */
  LB_HTTP1_DATE_LEN = 29
};

/* One header field: views of the name (as sent, any case) and of the value
 * with leading and trailing whitespace removed. */
typedef struct lb_http1_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} lb_http1_header;

/*
 * A parsed request head. The caller sets `headers` and `max_headers` (the
 * array the parser fills) and zero-fills the rest; a zero-filled struct with
 * no header array is valid too (then any header field gives LB_ETOOMANY).
 * The `_scan*` fields carry the progress of an incomplete head from one call
 * to the next; lb_http1_req_reset() clears them.
 */
typedef struct lb_http1_req {
  /* in */
  lb_http1_header *headers; /* array of max_headers entries */
  size_t max_headers;
  /* out */
  size_t num_headers;       /* entries of headers[] filled */
  const char *method;       /* "GET" */
  size_t method_len;
  const char *target;       /* request-target as sent: "/a/b?x=1" */
  size_t target_len;
  const char *path;         /* "/a/b"; "*" for OPTIONS *; the authority for */
  size_t path_len;          /* CONNECT; "" for "http://h" (absolute form) */
  const char *query;        /* "x=1" (after '?'); NULL when there is no '?' */
  size_t query_len;
  const char *host;         /* the authority of an absolute-form or CONNECT */
  size_t host_len;          /* target, else the Host value; NULL when none */
  int64_t content_length;   /* LENGTH: the length; NONE: 0; CHUNKED: -1 */
  int32_t version_major;    /* always 1 on success */
  int32_t version_minor;    /* 0 or 1 (llhttp knows no other 1.x) */
  int32_t body_kind;        /* LB_HTTP1_BODY_NONE, _LENGTH or _CHUNKED */
  int32_t keep_alive;       /* 1.1: no "close" token; 1.0: "keep-alive" token */
  int32_t expect_continue;  /* HTTP/1.1 "Expect: 100-continue" */
  int32_t expect_other;     /* HTTP/1.1 Expect with anything else (answer 417) */
  int32_t upgrade;          /* Connection has "upgrade" and Upgrade is present */
  int32_t method_id;        /* LB_HTTP1_GET..LB_HTTP1_PATCH, 0 for another method */
  int32_t _scan_lines;      /* private: line ends seen so far */
  size_t _scan_pos;         /* private: bytes already scanned */
  size_t _scan_start;       /* private: head start after leading empty lines */
} lb_http1_req;

/* method_id: the usual methods by number, so that a caller can use its own
 * string for them instead of making one from the bytes. */
enum {
  LB_HTTP1_GET = 1, LB_HTTP1_HEAD = 2, LB_HTTP1_POST = 3, LB_HTTP1_PUT = 4,
  LB_HTTP1_DELETE = 5, LB_HTTP1_OPTIONS = 6, LB_HTTP1_PATCH = 7
};

/* A parsed response head (the client side); same conventions as
 * lb_http1_req. */
typedef struct lb_http1_resp {
  /* in */
  lb_http1_header *headers;
  size_t max_headers;
  /* out */
  size_t num_headers;
  const char *reason;       /* reason phrase, may be empty */
  size_t reason_len;
  int64_t content_length;   /* the Content-Length when present and the body is
                               not chunked; otherwise 0 for NONE, -1 else */
  int32_t version_major;    /* always 1 on success */
  int32_t version_minor;
  int32_t status;           /* 100..999 */
  int32_t body_kind;        /* LB_HTTP1_BODY_* (CLOSE: read until EOF) */
  int32_t keep_alive;       /* the connection may carry another request */
  int32_t upgrade;          /* 101 Switching Protocols */
  int32_t _scan_lines;
  int32_t _pad;
  size_t _scan_pos;
  size_t _scan_start;
} lb_http1_resp;

/*
 * Parses a request head from buf[0..len). Incremental: after LB_EAGAIN call
 * again with the same buffer start and more bytes (the buffer may have been
 * moved; its content must not change); the bytes already scanned are not
 * scanned again. Empty lines before the request line are skipped (RFC 9112
 * 2.2) and counted in the return value. max_header_bytes bounds the head
 * (0 = LB_HTTP1_DEFAULT_MAX_HEADER_BYTES). Bare LF, CR not followed by LF,
 * control characters and lines starting with whitespace (obs-fold) are
 * rejected as soon as they arrive. Returns:
 *   > 0             the head is complete; its length (the body starts here).
 *                   The _scan fields are reset, so r can parse the next head.
 *   LB_EAGAIN       incomplete, and within max_header_bytes so far.
 *   LB_EHEADERSIZE  no end of head within max_header_bytes (431).
 *   LB_ETOOMANY     more header fields than max_headers (431).
 *   LB_EVERSION     not HTTP/1.x, incl. the HTTP/2 preface (505).
 *   LB_EMETHOD      a method llhttp does not know (501).
 *   LB_ETRANSFER    HTTP/1.1 Transfer-Encoding other than exactly one field
 *                   "chunked" (501). Ignored on HTTP/1.0.
 *   LB_EHOST        HTTP/1.1 without Host (CONNECT excepted), several Host
 *                   fields, or an invalid Host value (400).
 *   LB_ECONTENTLEN  Content-Length empty, not decimal, over 2^63-1, or
 *                   several fields with different values (400).
 *   LB_EHEADER      bad field name or value: not a token, CTL, NUL, space
 *                   before the colon, obs-fold, bare CR/LF (400).
 *   LB_EURL         bad request-target (400).
 *   LB_EPROTO       any other malformed request line (400).
 * On any return but > 0 the out fields are unspecified. The views stay valid
 * as long as buf does.
 */
ptrdiff_t lb_http1_parse_request(lb_http1_req *r, const char *buf, size_t len,
                                 size_t max_header_bytes);

/* The same, with every head through llhttp (the common heads are otherwise
 * read by a shorter path that must agree with it): for tests and fuzzing. */
ptrdiff_t lb_http1_parse_request_llhttp(lb_http1_req *r, const char *buf, size_t len,
                                        size_t max_header_bytes);

/* Clears the progress of an incomplete head (keeps headers/max_headers), to
 * parse a different buffer with the same struct. */
void lb_http1_req_reset(lb_http1_req *r);

/*
 * Parses a response head from buf[0..len); incremental like
 * lb_http1_parse_request(). head_request != 0 when the request was HEAD
 * (then there is no body whatever the head says). Framing (RFC 9112 6.3):
 * 1xx, 204, 304 and HEAD: NONE; HTTP/1.1 Transfer-Encoding "chunked" (one
 * field): CHUNKED; Content-Length: LENGTH; otherwise CLOSE. Returns:
 *   > 0             head length.
 *   LB_EAGAIN       incomplete.
 *   LB_EHEADERSIZE, LB_ETOOMANY, LB_EVERSION, LB_EHEADER, LB_ECONTENTLEN,
 *   LB_EPROTO       as for requests.
 *   LB_ETRANSFER    a Transfer-Encoding other than one "chunked" field on an
 *                   HTTP/1.1 response that has a body (we cannot decode it).
 *   LB_ESTATUS      bad status line or code.
 */
ptrdiff_t lb_http1_parse_response(lb_http1_resp *r, const char *buf, size_t len,
                                  size_t max_header_bytes, int head_request);

/* Same as lb_http1_req_reset() for responses. */
void lb_http1_resp_reset(lb_http1_resp *r);

/* The HTTP status a server answers to a parse error before closing: 431 for
 * LB_EHEADERSIZE and LB_ETOOMANY, 505 for LB_EVERSION, 501 for LB_ETRANSFER
 * and LB_EMETHOD, 413 for LB_ETOOLARGE, 400 for the other protocol errors
 * (-100..-199), 500 for any other negative code, and 0 for LB_EAGAIN and
 * values >= 0 (nothing to answer). */
int lb_http1_status_for(ptrdiff_t err);

/*
 * Chunked body decoder state (RFC 9112 7.1). A zero-filled struct is ready
 * for the first chunk-size line; zero it again for the next body.
 */
typedef struct lb_http1_chunked {
  uint64_t remaining;  /* data bytes left in the current chunk */
  uint64_t total;      /* data bytes decoded so far */
  int32_t state;       /* private, except LB_HTTP1_CHUNKED_DONE */
  uint32_t line_len;   /* bytes in the current size or trailer line */
  uint32_t ndigits;    /* hex digits of the current size */
  uint32_t trailer_len;/* bytes of trailer section so far */
  uint32_t name_match; /* private: trailer names still matching */
  uint32_t name_len;   /* private: length of the trailer name so far */
} lb_http1_chunked;

enum { LB_HTTP1_CHUNKED_DONE = 100 };

/*
 * Decodes chunked framing from in[0..len). Returns the number of bytes
 * consumed (>= 0) and sets (*data, *data_len) to the body bytes found in
 * them: a view into `in`, *data_len == 0 when the consumed bytes held only
 * framing. At most one data span is reported per call; the caller loops
 * until all input is consumed, or until lb_http1_chunked_done(c), after
 * which the function consumes nothing (the rest of the input belongs to the
 * next message). Consumed bytes need not be kept. Split-proof: the data
 * and the verdict are the same whatever the input boundaries. Errors:
 *   LB_ECHUNK       bad size (not hex, over 16 digits, over 2^63-1), size
 *                   line of LB_HTTP1_MAX_CHUNK_LINE bytes or more, bare LF or
 *                   stray CR, data not followed by CRLF, malformed trailer,
 *                   or a trailer named Transfer-Encoding, Content-Length or
 *                   Trailer.
 *   LB_EHEADERSIZE  trailer section of LB_HTTP1_MAX_TRAILER_BYTES or more.
 *   LB_EINVAL       NULL data or data_len.
 * After an error the state is unspecified (the body is unusable). Chunk
 * extensions and trailer fields are validated and skipped.
 */
ptrdiff_t lb_http1_chunked_decode(lb_http1_chunked *c, const char *in, size_t len,
                                  const char **data, size_t *data_len);

/* 1 when the last chunk and the trailer section have been consumed. */
int lb_http1_chunked_done(const lb_http1_chunked *c);

/*
 * Writes "HTTP/1.1 <status> <reason>\r\n" + "name: value\r\n" per header +
 * "\r\n" into dst[0..cap). reason NULL picks the standard phrase (empty for
 * codes without one). Returns the length written, or:
 *   LB_EINVAL    status outside 100..999, or hdrs NULL with n > 0.
 *   LB_EHEADER   a name that is not a token, or a value or reason with a
 *                control character (CR, LF, NUL, ...; HTAB is allowed):
 *                response splitting.
 *   LB_ENOSPACE  cap is too small (dst is left partly written).
 */
ptrdiff_t lb_http1_write_response_head(char *dst, size_t cap, int status,
                                       const char *reason,
                                       const lb_http1_header *hdrs, size_t n);

/* The exact length lb_http1_write_response_head() produces for these
 * arguments when they are valid (SIZE_MAX if it would overflow size_t). */
size_t lb_http1_response_head_max_len(int status, const char *reason,
                                      const lb_http1_header *hdrs, size_t n);

/* The standard reason phrase of a status ("Not Found"), "" when there is
 * none. Static. */
const char *lb_http1_reason(int status);

/* Writes the IMF-fixdate of unix_seconds (UTC), "Sun, 06 Nov 1994 08:49:37
 * GMT", plus a NUL into dst[30]. Times before year 0 or after 9999 are
 * clamped. Returns LB_HTTP1_DATE_LEN (29). No locale, no allocation. */
size_t lb_http1_format_date(char *dst, int64_t unix_seconds);

#endif
