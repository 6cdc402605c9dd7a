/*
 * lb_frame.h: wireframe, a binary framing toolkit (sans-I/O).
 *
 * Two parts:
 *
 * 1. Checksums, each with an incremental update call. Every update call
 *    takes the value returned by the previous call (the finished checksum of
 *    everything fed so far) and returns the finished checksum of everything
 *    fed including the new bytes, so
 *        update(update(init, a), b) == update(init, a || b).
 *    The starting value is lb_frame_checksum_init(kind), i.e. 0 for the
 *    CRC-32 and CRC-64 variants (zlib's convention), 1 for Adler-32, 0xFFFF
 *    for CRC-16/MODBUS and CRC-16/CCITT-FALSE, 0 for CRC-16/KERMIT and
 *    CRC-16/XMODEM. Parameters (Rocksoft model) and check values over the
 *    ASCII bytes "123456789":
 *
 *      kind                   width poly (normal)        init  refin xorout check
 *      CRC32 (IEEE, zlib)       4   04C11DB7             ~0    yes   ~0    CBF43926
 *      CRC32C (Castagnoli)      4   1EDC6F41             ~0    yes   ~0    E3069283
 *      CRC64_ISO (Go's ISO)     8   000000000000001B     ~0    yes   ~0    B90956C775A41001
 *      CRC64_ECMA (XZ)          8   42F0E1EBA9EA3693     ~0    yes   ~0    995DC9BBDF1939FA
 *      ADLER32 (zlib)           4   -                    1     -     -     091E01DE
 *      CRC16_MODBUS             2   8005                 FFFF  yes   0     4B37
 *      CRC16_CCITT_FALSE        2   1021                 FFFF  no    0     29B1
 *        (a.k.a. CRC-16/IBM-3740)
 *      CRC16_KERMIT             2   1021                 0     yes   0     2189
 *      CRC16_XMODEM             2   1021                 0     no    0     31C3
 *
 *    CRC64_ISO is Go's hash/crc64 ISO table (CRC-64/GO-ISO); CRC64_ECMA is
 *    Go's hash/crc64 ECMA table, the same CRC as XZ's (CRC-64/XZ).
 *
 * 2. A frame format engine. A frame on the wire is
 *        prefix | header fields | payload | checksum
 *    where the prefix is fixed magic bytes (0..16), the header is an ordered
 *    list of fixed-width integer fields of which exactly one holds the
 *    payload length, and the checksum (optional) covers the header and the
 *    payload (everything after the prefix up to the end of the payload).
 *    lb_frame_format is a plain struct the caller fills; it is validated by
 *    every call that uses it (cheap: at most 16 fields), so a caller may
 *    change it between calls and nothing is cached. A caller that decodes
 *    many frames of one format can do that work once: lb_frame_compile
 *    turns a valid format into an lb_frame_compiled, which
 *    lb_frame_decode_compiled and lb_frame_decode_batch_compiled use
 *    (same results as lb_frame_decode and lb_frame_decode_batch).
 */
#ifndef LOWBIT_LB_FRAME_H
#define LOWBIT_LB_FRAME_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

/* ---- checksums ---------------------------------------------------------- */

enum lb_frame_checksum_kind {
  LB_FRAME_CK_NONE = 0,
  LB_FRAME_CK_CRC32 = 1,
  LB_FRAME_CK_CRC32C = 2,
  LB_FRAME_CK_CRC64_ISO = 3,
  LB_FRAME_CK_CRC64_ECMA = 4,
  LB_FRAME_CK_ADLER32 = 5,
  LB_FRAME_CK_CRC16_MODBUS = 6,
  LB_FRAME_CK_CRC16_CCITT_FALSE = 7,
  LB_FRAME_CK_CRC16_KERMIT = 8,
  LB_FRAME_CK_CRC16_XMODEM = 9,
  LB_FRAME_CK_COUNT = 10
};

/* CRC-32 IEEE 802.3 (zlib's crc32). Start with 0. */
uint32_t lb_crc32_update(uint32_t crc, const void *p, size_t n);

/* CRC-32C (Castagnoli, iSCSI). Start with 0. Uses the SSE4.2 crc32
 * instruction when the CPU has it (see lb_crc32c_hardware), a slicing-by-8
 * table otherwise; both give the same results. */
uint32_t lb_crc32c_update(uint32_t crc, const void *p, size_t n);

/* 1 when lb_crc32c_update uses the CPU's crc32 instruction, 0 otherwise. */
int lb_crc32c_hardware(void);

/* CRC-64 as in Go's hash/crc64.ISO (CRC-64/GO-ISO). Start with 0. */
uint64_t lb_crc64_iso_update(uint64_t crc, const void *p, size_t n);

/* CRC-64 ECMA-182 reflected, as in XZ and Go's hash/crc64.ECMA
 * (CRC-64/XZ). Start with 0. */
uint64_t lb_crc64_ecma_update(uint64_t crc, const void *p, size_t n);

/* Adler-32 (zlib's adler32). Start with 1. */
uint32_t lb_adler32_update(uint32_t adler, const void *p, size_t n);

/* CRC-16/MODBUS. Start with 0xFFFF. */
uint16_t lb_crc16_modbus_update(uint16_t crc, const void *p, size_t n);

/* CRC-16/CCITT-FALSE (CRC-16/IBM-3740). Start with 0xFFFF. */
uint16_t lb_crc16_ccitt_false_update(uint16_t crc, const void *p, size_t n);

/* CRC-16/KERMIT. Start with 0. */
uint16_t lb_crc16_kermit_update(uint16_t crc, const void *p, size_t n);

/* CRC-16/XMODEM. Start with 0. */
uint16_t lb_crc16_xmodem_update(uint16_t crc, const void *p, size_t n);

/* Width in bytes of a checksum kind: 0 for LB_FRAME_CK_NONE, 2, 4 or 8;
 * LB_EINVAL for an unknown kind. */
int lb_frame_checksum_width(int kind);

/* The starting value for lb_frame_checksum_update (see the table above);
 * 0 for NONE and for an unknown kind. */
uint64_t lb_frame_checksum_init(int kind);

/* Generic incremental update by kind: the kind's update call, with the value
 * widened to 64 bits (only the low width*8 bits are used and returned).
 * Returns 0 for LB_FRAME_CK_NONE and for an unknown kind. */
uint64_t lb_frame_checksum_update(int kind, uint64_t crc, const void *p, size_t n);

/* One-shot: lb_frame_checksum_update(kind, lb_frame_checksum_init(kind), p, n). */
uint64_t lb_frame_checksum(int kind, const void *p, size_t n);

/* ---- format engine ------------------------------------------------------ */

enum lb_frame_field_kind {
  LB_FRAME_U8 = 1,
  LB_FRAME_U16BE = 2,
  LB_FRAME_U16LE = 3,
  LB_FRAME_U32BE = 4,
  LB_FRAME_U32LE = 5,
  LB_FRAME_U64BE = 6,
  LB_FRAME_U64LE = 7,
  /* payload-length fields: exactly one per format */
  LB_FRAME_LEN8 = 8,
  LB_FRAME_LEN16BE = 9,
  LB_FRAME_LEN16LE = 10,
  LB_FRAME_LEN32BE = 11,
  LB_FRAME_LEN32LE = 12
};

enum lb_frame_byte_order {
  LB_FRAME_BIG_ENDIAN = 0,    /* checksum stored most significant byte first */
  LB_FRAME_LITTLE_ENDIAN = 1  /* least significant byte first (Modbus RTU) */
};

enum {
  LB_FRAME_MAX_PREFIX = 16,
  LB_FRAME_MAX_FIELDS = 16,
  /* the largest possible header: 16 fields of 8 bytes */
  LB_FRAME_MAX_HEADER = 128
};

/*
 * A frame format. Zero-filled is not valid (it has no length field).
 * - prefix[0..prefix_len): magic bytes every frame starts with.
 * - fields[0..nfields): lb_frame_field_kind values, in wire order.
 * - checksum: lb_frame_checksum_kind; checksum_order: lb_frame_byte_order.
 * - max_payload: the largest payload accepted by encode and decode; 0 means
 *   "as large as the length field can express". It must not exceed what the
 *   length field can express (255, 65535 or 4294967295).
 */
typedef struct lb_frame_format {
  uint8_t prefix[16];
  uint32_t prefix_len;
  uint32_t nfields;
  uint32_t fields[16];
  uint32_t checksum;
  uint32_t checksum_order;
  uint64_t max_payload;
} lb_frame_format;

/* Checks a format. Returns 0, or LB_EFORMAT when it is inconsistent: prefix
 * longer than 16 bytes, more than 16 fields, an unknown field kind, no
 * payload-length field, two payload-length fields, an unknown checksum kind
 * or byte order, max_payload larger than the length field can express. */
int lb_frame_validate(const lb_frame_format *f);

/* Why lb_frame_validate rejects f: a static message ("no payload-length
 * field", ...), or NULL when f is valid. When field_index is not NULL it
 * receives the index of the offending field, or -1 when the defect is not
 * about one field. */
const char *lb_frame_validate_reason(const lb_frame_format *f, int *field_index);

/* Bytes of fixed overhead per frame: prefix + header + checksum, or
 * LB_EFORMAT. */
ptrdiff_t lb_frame_overhead(const lb_frame_format *f);

/* Size of an encoded frame with an n-byte payload: overhead + n. Returns
 * LB_EFORMAT for an invalid format, LB_ETOOLARGE when n > the effective
 * max_payload. */
ptrdiff_t lb_frame_encoded_len(const lb_frame_format *f, size_t n);

/*
 * Encodes one frame into dst[0..cap). vals[i] is the value of fields[i]
 * (nfields entries; the entry of the length field is ignored, the payload
 * length n is written there). payload may be NULL when n is 0.
 * Returns the number of bytes written (lb_frame_encoded_len(f, n)), or
 *   LB_EFORMAT    the format is invalid,
 *   LB_ETOOLARGE  n > max_payload,
 *   LB_EINVAL     a header value does not fit its field's width,
 *   LB_ENOSPACE   cap is too small (nothing useful is written).
 */
ptrdiff_t lb_frame_encode(const lb_frame_format *f, const uint64_t *vals,
                          const uint8_t *payload, size_t n, uint8_t *dst,
                          size_t cap);

/*
 * Decodes the frame at the start of src[0..n). On success returns the total
 * number of bytes of the frame (prefix through checksum), stores the
 * header values in vals[0..nfields) (the length field's entry holds the
 * payload length), and the payload position as src + *payload_off,
 * *payload_len bytes (a view into src, valid as long as src is). vals,
 * payload_off and payload_len may be NULL. Nothing is stored on failure:
 *   LB_EAGAIN     src holds a correct but incomplete frame start: read more
 *                 and call again with the longer buffer;
 *   LB_EPREFIX    src does not start with the prefix (see
 *                 lb_frame_find_prefix to resynchronize);
 *   LB_ETOOLARGE  the declared payload length exceeds max_payload (reported
 *                 as soon as the length field is readable, before the rest
 *                 of the frame arrives);
 *   LB_ECHECKSUM  the checksum does not match;
 *   LB_EFORMAT    the format is invalid.
 * The result depends only on the bytes up to the frame's end: a call on any
 * shorter prefix of src returns LB_EAGAIN or the same error.
 */
ptrdiff_t lb_frame_decode(const lb_frame_format *f, const uint8_t *src,
                          size_t n, uint64_t *vals, size_t *payload_off,
                          size_t *payload_len);

/* One frame found by lb_frame_decode_batch; every offset is from src. */
typedef struct lb_frame_span {
  size_t start;       /* the frame's first byte (its prefix) */
  size_t len;         /* the frame's size, prefix through checksum */
  size_t payload_off; /* the payload: src + payload_off, payload_len bytes */
  size_t payload_len;
} lb_frame_span;

/*
 * Decodes the consecutive frames at the start of src[0..n), at most
 * max_frames of them, validating the format once for all: the same result
 * as calling lb_frame_decode at src, then at src + (bytes used so far),
 * and so on, stopping at the first call that does not return a frame.
 * Frame k (k < *count) is described by spans[k] (views into src, valid as
 * long as src is) and its header values are vals[k * nfields ..
 * k * nfields + nfields) (the length field's entry holds the payload
 * length). spans and vals may be NULL; otherwise they hold max_frames
 * entries (vals: max_frames * nfields). count and stop may be NULL.
 * Returns the number of bytes the decoded frames take (where decoding
 * stopped; 0 <= result <= n), or LB_EFORMAT for an invalid format (then
 * *count is 0). *stop receives why decoding stopped:
 *   0             max_frames frames were decoded (there may be more);
 *   LB_EAGAIN     src + result holds an incomplete frame, or nothing;
 *   LB_EPREFIX, LB_ETOOLARGE, LB_ECHECKSUM
 *                 the frame at src + result fails as in lb_frame_decode;
 *   LB_EFORMAT    the format is invalid.
 */
ptrdiff_t lb_frame_decode_batch(const lb_frame_format *f, const uint8_t *src,
                                size_t n, size_t max_frames,
                                lb_frame_span *spans, uint64_t *vals,
                                size_t *count, int *stop);

/*
 * A format validated and laid out once, for the decoders below: filled by
 * lb_frame_compile (caller-allocated; it holds no pointer, so it may be
 * copied, and it does not refer to the format it came from). Its members
 * are the decoder's private layout: read them if useful, never write them.
 * A zero-filled one is not ready: the decoders return LB_EFORMAT.
 */
typedef struct lb_frame_compiled {
  uint64_t prefix_word;   /* prefix bytes 0..7 as a little-endian word... */
  uint64_t prefix_mask;   /* ...and the mask of its prefix_len bytes (<= 8) */
  uint64_t max_payload;   /* effective limit, never above the field's range */
  uint8_t prefix[16];
  uint32_t prefix_len;
  uint32_t header_len;    /* bytes of header fields */
  uint32_t len_off;       /* offset of the length field in the header */
  uint32_t len_index;     /* index of the length field */
  uint32_t nfields;
  uint32_t checksum;      /* lb_frame_checksum_kind */
  uint32_t ck_width;      /* 0, 2, 4 or 8 */
  uint32_t ck_little;     /* 1: checksum stored little-endian */
  uint32_t ck_path;       /* how the checksum is computed (internal) */
  uint32_t ready;         /* set by lb_frame_compile */
  uint8_t field_off[16];  /* per field: offset in the header, */
  uint8_t field_cut[16];  /* 64 - 8 * width in bytes (1, 2, 4, 8), */
  uint8_t field_big[16];  /* 1 when big-endian */
} lb_frame_compiled;

/* Validates f and fills *c for lb_frame_decode_compiled and
 * lb_frame_decode_batch_compiled. Returns 0, or LB_EFORMAT when f is
 * invalid (as lb_frame_validate) or c is NULL; then *c (when not NULL) is
 * zero-filled, i.e. not ready. Later changes to f do not affect *c. */
int lb_frame_compile(const lb_frame_format *f, lb_frame_compiled *c);

/* lb_frame_decode under a compiled format: the same results, codes and
 * outputs, for the same bytes, as lb_frame_decode with the format c was
 * compiled from; LB_EFORMAT when c is NULL or not ready. */
ptrdiff_t lb_frame_decode_compiled(const lb_frame_compiled *c, const uint8_t *src,
                                   size_t n, uint64_t *vals, size_t *payload_off,
                                   size_t *payload_len);

/* lb_frame_decode_batch under a compiled format (same results); LB_EFORMAT
 * when c is NULL or not ready. */
ptrdiff_t lb_frame_decode_batch_compiled(const lb_frame_compiled *c, const uint8_t *src,
                                         size_t n, size_t max_frames,
                                         lb_frame_span *spans, uint64_t *vals,
                                         size_t *count, int *stop);

/*
 * Resynchronization helper: the smallest offset i in [0, n] where a frame
 * may start, i.e. src[i..] begins with the whole prefix, or src[i..n) is a
 * proper beginning of the prefix (then i = n - length of that partial
 * match); n when there is no candidate. With an empty prefix every offset
 * is a candidate and the result is 0. After LB_EPREFIX the result is > 0;
 * after LB_ECHECKSUM or LB_ETOOLARGE skip one byte first
 * (1 + lb_frame_find_prefix(f, src + 1, n - 1)). An invalid format gives n.
 */
size_t lb_frame_find_prefix(const lb_frame_format *f, const uint8_t *src, size_t n);

#endif
