/*
 * lb_resp.h: the Redis serialization protocol (RESP2 and RESP3), sans-I/O.
 *
 * - Encoder: one command (an array of bulk strings, `*n\r\n$len\r\n...\r\n`)
 *   written into a caller buffer, with an exact sizing helper.
 * - Parser: one reply at a time into a caller-provided flat array of nodes,
 *   in pre-order (an aggregate node is followed by its elements). No
 *   allocation, no callbacks. Nodes hold offsets into the reply, not
 *   pointers, so the caller may move its buffer between calls.
 *   Incremental: a truncated reply returns LB_EAGAIN with the progress kept
 *   in the parser; call again with the same bytes plus more.
 *
 * Types (the wire's first byte, RESP3 spec "Protocol overview"):
 *   '+' simple string   '-' simple error   ':' integer    '$' bulk string
 *   '*' array           '_' null           ',' double     '#' boolean
 *   '(' big number      '!' blob error     '=' verbatim   '%' map
 *   '~' set             '|' attribute      '>' push
 * RESP2's null bulk string `$-1` and null array `*-1` come out as '_'.
 * Streamed strings and aggregates (`$?`, `*?`) are not supported: EPROTO.
 *
 * Conformance notes: shared/conformance/scale.md section 3.3.
 */
#ifndef LOWBIT_LB_RESP_H
#define LOWBIT_LB_RESP_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

enum {
  LB_RESP_SIMPLE = '+',
  LB_RESP_ERROR = '-',
  LB_RESP_INTEGER = ':',
  LB_RESP_BULK = '$',
  LB_RESP_ARRAY = '*',
  LB_RESP_NULL = '_',
  LB_RESP_DOUBLE = ',',
  LB_RESP_BOOLEAN = '#',
  LB_RESP_BIGNUM = '(',
  LB_RESP_BLOB_ERROR = '!',
  LB_RESP_VERBATIM = '=',
  LB_RESP_MAP = '%',
  LB_RESP_SET = '~',
  LB_RESP_ATTRIBUTE = '|',
  LB_RESP_PUSH = '>',

  /* Most nesting levels the parser can track (the stack is in the struct). */
  LB_RESP_MAX_DEPTH = 64,
  /* Defaults, used when the parser's limit fields are 0. */
  LB_RESP_DEFAULT_MAX_DEPTH = 32,
  LB_RESP_DEFAULT_MAX_BULK = 536870912, /* 512 MiB, Redis' proto-max-bulk-len */
  LB_RESP_DEFAULT_MAX_COUNT = 16777216  /* elements (or map pairs) of one aggregate */
};

/*
 * One parsed value.
 *   type  one of LB_RESP_*.
 *   n     integer: its value; boolean: 0 or 1; aggregate: number of
 *         elements (map and attribute: number of pairs, so 2n nodes
 *         follow); string types: the payload length; null: 0.
 *   off   string types (simple, error, bulk, double, big number, blob
 *         error, verbatim): offset of the payload from the reply's first
 *         byte. For a verbatim string the payload is the text after the
 *         `fmt:` prefix; its 3-byte format starts at off - 4.
 *   len   payload length (string types), 0 otherwise.
 * An attribute node and its pairs come right before the value they
 * describe; they do not count as an element of the enclosing aggregate.
 */
typedef struct lb_resp_node {
  int32_t type;
  int32_t pad_;
  int64_t n;
  size_t off;
  size_t len;
} lb_resp_node;

/*
 * Parser state, allocated by the caller. A zero-filled struct is a parser
 * at the start of a reply with default limits (lb_resp_parser_init
 * zero-fills it). Limits (0 = default): max_depth (capped at
 * LB_RESP_MAX_DEPTH), max_bulk (bytes of one string payload, including
 * simple strings and lines), max_count (elements of one aggregate).
 * After a reply is complete, n_nodes is its node count; the other fields
 * are private.
 */
typedef struct lb_resp_parser {
  uint32_t max_depth;
  uint32_t depth;
  uint64_t max_bulk;
  uint64_t max_count;
  size_t pos;     /* bytes of the reply consumed so far */
  size_t scan;    /* where the search for the current line's CRLF resumes */
  size_t n_nodes; /* nodes written so far */
  /* per open aggregate: elements still expected (attributes included) */
  int64_t left[LB_RESP_MAX_DEPTH];
  /* per open aggregate: 1 when it is an attribute */
  uint8_t attr[LB_RESP_MAX_DEPTH];
} lb_resp_parser;

/* Zero-fills p: start of a reply, default limits. */
void lb_resp_parser_init(lb_resp_parser *p);

/* Forgets the reply in progress, keeping the limits. */
void lb_resp_parser_reset(lb_resp_parser *p);

/*
 * Parses one reply from buf[0..len), which holds the reply from its first
 * byte (bytes already seen in an earlier call must be passed again,
 * unchanged; the buffer may have moved). Nodes go to nodes[0..cap).
 * Returns:
 *   > 0          the reply is complete and used that many bytes of buf;
 *                p->n_nodes nodes describe it; p is reset for the next
 *                reply (whose bytes start at buf + the returned value).
 *   LB_EAGAIN    buf ends inside the reply: call again with more bytes.
 *   LB_ENOSPACE  nodes is full: call again with a larger array holding
 *                the p->n_nodes nodes written so far (copy them over).
 *   LB_EPROTO    the bytes break RESP (unknown type byte, bad digits, a
 *                missing CRLF, a bad boolean, double or verbatim...).
 *   LB_ETOOLARGE a string longer than max_bulk (checked before any size
 *                arithmetic, also for a line that has no CRLF yet).
 *   LB_ETOOMANY  an aggregate with more than max_count elements.
 *   LB_EDEPTH    nesting deeper than max_depth.
 *   LB_EINVAL    p, buf or nodes is NULL (with len or cap > 0).
 * After an error the parser must be reset before it is used again.
 */
ptrdiff_t lb_resp_parse(lb_resp_parser *p, const uint8_t *buf, size_t len,
                        lb_resp_node *nodes, size_t cap);

/* Exact size of the encoding of a command of n arguments with the given
 * lengths: `*n\r\n` then `$len\r\n<arg>\r\n` each. SIZE_MAX on overflow. */
size_t lb_resp_command_len(const size_t *lens, size_t n);

/*
 * Writes a command (n >= 1 arguments; args[i] has lens[i] bytes and may
 * hold any byte) into out[0..cap). Returns the bytes written, LB_EINVAL
 * (n == 0, or a NULL argument with a length > 0), or LB_ENOSPACE (cap <
 * lb_resp_command_len; out is not touched).
 */
ptrdiff_t lb_resp_encode_command(const char *const *args, const size_t *lens,
                                 size_t n, uint8_t *out, size_t cap);

/*
 * The same for a command of n = 1..4 arguments passed one by one (a1, l1
 * ... a4, l4; those past n are ignored), for callers that would otherwise
 * fill the two arrays for each command (the FFI). Fits in 4 + sum of
 * (25 + li) bytes. Returns the bytes written, LB_EINVAL (n not in 1..4,
 * or a NULL argument with a length > 0), or LB_ENOSPACE (out is too small;
 * it is not touched).
 */
ptrdiff_t lb_resp_encode4(uint8_t *out, size_t cap, size_t n,
                          const char *a1, size_t l1, const char *a2, size_t l2,
                          const char *a3, size_t l3, const char *a4, size_t l4);

#endif
