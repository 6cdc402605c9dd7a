/* test_cron.c: lb_cron parser, next-fire search and TZif zones.
 *
 * - every row of conformance/cron_vectors.tsv (read at run time from
 *   $LB_CRON_VECTORS or ../shared/conformance/, beside the repository);
 * - more vectors of our own (DST in several zones, the day rule, steps,
 *   names, the 8-year horizon) and negative cases named by their defect;
 * - a brute-force reference: random expressions against a minute-by-minute
 *   scan whose wall clock comes from glibc's localtime_r (its own TZif
 *   reader), for UTC and DST zones, applying the rules of section 4.2 as
 *   written;
 * - the POSIX TZ footer against glibc over 2040-2060 (past every table). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lb_test.h"
#include "lowbit/lb_cron.h"

#define ZONEINFO "/usr/share/zoneinfo/"

static int64_t parse_iso(const char *s) {
  int y, mo, d, h, mi, se;
  if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &se) != 6) return INT64_MIN;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return (int64_t)timegm(&tm);
}

static void fmt_iso(int64_t t, char *buf, size_t n) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  uint8_t *b = malloc(cap);
  size_t r;
  while (b != NULL && (r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *nb = realloc(b, cap *= 2);
      if (nb == NULL) { free(b); b = NULL; }
      else b = nb;
    }
  }
  fclose(f);
  *len = n;
  return b;
}

/* A zone from the system's tzdata; NULL for "UTC" (the default zone). */
static lb_tz *load_zone(const char *name, int *err) {
  *err = 0;
  if (strcmp(name, "UTC") == 0) return NULL;
  char path[512];
  snprintf(path, sizeof path, ZONEINFO "%s", name);
  size_t len;
  uint8_t *b = read_file(path, &len);
  if (b == NULL) {
    *err = -1;
    return NULL;
  }
  lb_tz *z = lb_tz_new(b, len, err);
  free(b);
  return z;
}

static int next_in(const char *expr, const char *zone, const char *from, char *got, size_t n) {
  lb_cron c;
  int rc = lb_cron_parse(&c, expr, strlen(expr));
  if (rc != 0) {
    snprintf(got, n, "ERROR %s", lb_err_name(rc));
    return rc;
  }
  int err;
  lb_tz *z = load_zone(zone, &err);
  if (err != 0) {
    snprintf(got, n, "ZONE %s", zone);
    return -1;
  }
  int64_t out;
  rc = lb_cron_next(&c, z, parse_iso(from), &out);
  lb_tz_free(z);
  if (rc != 0) {
    snprintf(got, n, "NONE %s", lb_err_name(rc));
    return rc;
  }
  fmt_iso(out, got, n);
  return 0;
}

/* expr, zone, from, expected ("ERROR" = must not parse) */
static int check_vector(const char *id, const char *expr, const char *zone, const char *from,
                        const char *want) {
  char got[64];
  next_in(expr, zone, from, got, sizeof got);
  int ok = strcmp(want, "ERROR") == 0 ? strncmp(got, "ERROR", 5) == 0 : strcmp(got, want) == 0;
  if (!ok)
    fprintf(stderr, "  FAIL %s: \"%s\" %s from %s: want %s, got %s\n", id, expr, zone, from,
            want, got);
  return ok;
}

static const char *vectors_path(void) {
  static const char *cands[] = {"../shared/conformance/cron_vectors.tsv",
                                "../../shared/conformance/cron_vectors.tsv"};
  const char *env = getenv("LB_CRON_VECTORS");
  if (env != NULL && *env != '\0') return env;
  for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
    FILE *f = fopen(cands[i], "r");
    if (f != NULL) {
      fclose(f);
      return cands[i];
    }
  }
  return cands[0];
}

/* Every row of the conformance file (tab-separated: id expr tz from_utc
 * expected_utc note). */
static void test_conformance_tsv(void) {
  const char *path = vectors_path();
  FILE *f = fopen(path, "r");
  if (f == NULL) fprintf(stderr, "  cannot open %s (set LB_CRON_VECTORS)\n", path);
  LB_CHECK(f != NULL);
  if (f == NULL) return;
  char line[1024];
  int rows = 0, errors = 0, zoned = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (line[0] == 0 || strncmp(line, "id\t", 3) == 0) continue;
    char *col[6] = {0};
    int nc = 0;
    char *p = line;
    while (nc < 6) {
      col[nc++] = p;
      char *tab = strchr(p, '\t');
      if (tab == NULL) break;
      *tab = 0;
      p = tab + 1;
    }
    LB_CHECK(nc >= 5);
    if (nc < 5) continue;
    rows++;
    if (strcmp(col[4], "ERROR") == 0) errors++;
    if (strcmp(col[2], "UTC") != 0) zoned++;
    LB_CHECK(check_vector(col[0], col[1], col[2], col[3], col[4]));
  }
  fclose(f);
  printf("  cron_vectors.tsv: %d rows (%d ERROR, %d zoned)\n", rows, errors, zoned);
  LB_CHECK(rows >= 37);
  LB_CHECK(errors >= 8);
  LB_CHECK(zoned >= 9);
}

/* Vectors of our own, checked by hand against a calendar. */
static const char *const MORE[][5] = {
    {"m01", "0 0 * * *", "UTC", "2024-01-01T10:07:30Z", "2024-01-02T00:00:00Z"},
    {"m02", "* * * * *", "UTC", "2024-01-01T10:07:30Z", "2024-01-01T10:08:00Z"},
    {"m03", "*/10 * * * *", "UTC", "2024-01-01T10:59:59Z", "2024-01-01T11:00:00Z"},
    {"m04", "15,45 9-17/4 * * *", "UTC", "2024-01-01T13:45:00Z", "2024-01-01T17:15:00Z"},
    {"m05", "0 0 */10 * *", "UTC", "2024-01-21T00:00:00Z", "2024-01-31T00:00:00Z"},
    {"m06", "0 0 1-31/10 * *", "UTC", "2024-01-31T00:00:00Z", "2024-02-01T00:00:00Z"},
    /* `*`-prefixed day of week: AND; c22's reading */
    {"m07", "0 0 1-7 * */1", "UTC", "2025-01-07T00:00:00Z", "2025-02-01T00:00:00Z"},
    {"m08", "0 0 1-7 * */2", "UTC", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"},
    {"m09", "0 0 13 * 5", "UTC", "2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"},
    {"m10", "0 0 * * 7", "UTC", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"},
    {"m11", "0 0 * * MON-fri", "UTC", "2024-01-06T00:00:00Z", "2024-01-08T00:00:00Z"},
    {"m12", "0 0 * * 1/2", "UTC", "2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z"},
    {"m13", "0 0 * * 6/1", "UTC", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z"},
    {"m14", "0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"m15", "0 0 29 2 1", "UTC", "2024-01-01T00:00:00Z", "2024-02-05T00:00:00Z"},
    {"m16", "@monthly", "UTC", "2024-01-31T23:59:59Z", "2024-02-01T00:00:00Z"},
    {"m17", "@hourly", "UTC", "2024-01-31T23:59:59Z", "2024-02-01T00:00:00Z"},
    {"m18", "@ANNUALLY", "UTC", "2023-12-31T23:59:59Z", "2024-01-01T00:00:00Z"},
    {"m19", "@Midnight", "UTC", "2024-02-28T12:00:00Z", "2024-02-29T00:00:00Z"},
    {"m20", " \t0  12\t* *   * \n", "UTC", "2024-02-28T12:00:00Z", "2024-02-29T12:00:00Z"},
    {"m21", "0 0 31 4,6,7 *", "UTC", "2024-01-01T00:00:00Z", "2024-07-31T00:00:00Z"},
    {"m22", "0 0 * FEB mon", "UTC", "2024-01-01T00:00:00Z", "2024-02-05T00:00:00Z"},
    {"m23", "59 23 * * *", "UTC", "1969-12-31T23:59:00Z", "1970-01-01T23:59:00Z"},
    {"m24", "0 0 1 1 *", "UTC", "1900-06-01T00:00:00Z", "1901-01-01T00:00:00Z"},
    {"m25", "05 003 * * *", "UTC", "2024-01-01T00:00:00Z", "2024-01-01T03:05:00Z"},
    {"m26", "0 0 * * 0,7", "UTC", "2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"},
    /* zones */
    {"n01", "30 2 * * *", "America/New_York", "2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"},
    {"n02", "30 1 * * *", "America/New_York", "2024-11-03T04:00:00Z", "2024-11-03T05:30:00Z"},
    {"n03", "30 1 * * *", "America/New_York", "2024-11-03T06:00:00Z", "2024-11-04T06:30:00Z"},
    {"n04", "*/30 * * * *", "America/New_York", "2024-11-03T05:45:00Z", "2024-11-03T06:00:00Z"},
    {"n05", "0 * * * *", "America/New_York", "2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z"},
    {"n06", "0 * * * *", "America/New_York", "2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z"},
    {"n07", "0 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z"},
    {"n08", "59 1 * * *", "America/New_York", "2024-03-09T12:00:00Z", "2024-03-10T06:59:00Z"},
    {"n09", "0 0 * * *", "America/Sao_Paulo", "2018-11-03T12:00:00Z", "2018-11-04T03:00:00Z"},
    {"n10", "* 0 * * *", "America/Sao_Paulo", "2018-11-04T02:59:00Z", "2018-11-05T02:00:00Z"},
    {"n11", "30 1 * * *", "Europe/Dublin", "2024-03-31T00:00:00Z", "2024-03-31T01:00:00Z"},
    {"n12", "30 1 * * *", "Europe/Dublin", "2024-10-27T00:00:00Z", "2024-10-27T00:30:00Z"},
    {"n13", "30 1 * * *", "Europe/Dublin", "2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"},
    {"n14", "0 12 * * *", "Asia/Kolkata", "2024-06-01T00:00:00Z", "2024-06-01T06:30:00Z"},
    {"n15", "0 3 * * *", "Australia/Sydney", "2024-10-05T12:00:00Z", "2024-10-05T16:00:00Z"},
    {"n16", "30 2 * * *", "Australia/Sydney", "2024-10-05T12:00:00Z", "2024-10-05T16:00:00Z"},
    {"n17", "30 2 * * *", "America/New_York", "2040-03-11T05:00:00Z", "2040-03-11T07:00:00Z"},
    {"n18", "30 1 * * *", "America/New_York", "2040-11-04T05:30:00Z", "2040-11-05T06:30:00Z"},
    {"n19", "0 0 * * *", "UTC", "2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"},
    {"n20", "0 0 * * *", "Etc/UTC", "2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"},
    {"n21", "0 9 * * *", "Pacific/Kiritimati", "2024-06-01T00:00:00Z", "2024-06-01T19:00:00Z"},
    {"n22", "0 0 30 12 *", "Pacific/Apia", "2011-12-29T00:00:00Z", "2011-12-30T10:00:00Z"},
};

static void test_more_vectors(void) {
  for (size_t i = 0; i < sizeof MORE / sizeof MORE[0]; i++)
    LB_CHECK(check_vector(MORE[i][0], MORE[i][1], MORE[i][2], MORE[i][3], MORE[i][4]));
}

static void expect_error(const char *expr, int code, int field) {
  lb_cron c;
  int rc = lb_cron_parse(&c, expr, strlen(expr));
  if (rc != code || c.err_field != field)
    fprintf(stderr, "  \"%s\": rc %s field %d, want %s field %d\n", expr, lb_err_name(rc),
            c.err_field, lb_err_name(code), field);
  LB_CHECK_EQ(rc, code);
  LB_CHECK_EQ(c.err_field, field);
}

static void test_negative(void) {
  /* field count */
  expect_error("", LB_ECRONFIELDS, 0);
  expect_error("   ", LB_ECRONFIELDS, 0);
  expect_error("* * * *", LB_ECRONFIELDS, 0);
  expect_error("0 * * * * *", LB_ECRONFIELDS, 0);       /* seconds field */
  expect_error("0 0 1 1 * 2024", LB_ECRONFIELDS, 0);    /* year field */
  expect_error("@reboot", LB_ECRONFIELDS, 0);
  expect_error("@every 5m", LB_ECRONFIELDS, 0);
  expect_error("@every", LB_ECRONFIELDS, 0);
  expect_error("@daily extra", LB_ECRONFIELDS, 0);
  expect_error("@", LB_ECRONFIELDS, 0);
  /* ranges */
  expect_error("60 * * * *", LB_ECRONRANGE, 1);
  expect_error("* 24 * * *", LB_ECRONRANGE, 2);
  expect_error("* * 0 * *", LB_ECRONRANGE, 3);
  expect_error("* * 32 * *", LB_ECRONRANGE, 3);
  expect_error("* * * 0 *", LB_ECRONRANGE, 4);
  expect_error("* * * 13 *", LB_ECRONRANGE, 4);
  expect_error("* * * * 8", LB_ECRONRANGE, 5);
  expect_error("*/0 * * * *", LB_ECRONRANGE, 1);
  expect_error("5-1 * * * *", LB_ECRONRANGE, 1);        /* a > b */
  expect_error("0 0 * * SAT-SUN", LB_ECRONRANGE, 5);    /* wrap-around */
  expect_error("0 0 * DEC-JAN *", LB_ECRONRANGE, 4);
  expect_error("99999999999999999999 * * * *", LB_ECRONRANGE, 1);
  expect_error("0-99999 * * * *", LB_ECRONRANGE, 1);
  /* syntax */
  expect_error("1,,2 * * * *", LB_ECRONSYNTAX, 1);      /* empty item */
  expect_error("1, * * * *", LB_ECRONSYNTAX, 1);
  expect_error(",1 * * * *", LB_ECRONSYNTAX, 1);
  expect_error("0 0 L * *", LB_ECRONSYNTAX, 3);
  expect_error("0 0 15W * *", LB_ECRONSYNTAX, 3);
  expect_error("0 0 ? * MON", LB_ECRONSYNTAX, 3);
  expect_error("0 0 * * 5#3", LB_ECRONSYNTAX, 5);
  expect_error("0 0 * * 5L", LB_ECRONSYNTAX, 5);
  expect_error("H * * * *", LB_ECRONSYNTAX, 1);
  expect_error("*/ * * * *", LB_ECRONSYNTAX, 1);
  expect_error("*/x * * * *", LB_ECRONSYNTAX, 1);
  expect_error("*5 * * * *", LB_ECRONSYNTAX, 1);
  expect_error("1-* * * * *", LB_ECRONSYNTAX, 1);
  expect_error("1- * * * *", LB_ECRONSYNTAX, 1);
  expect_error("-1 * * * *", LB_ECRONSYNTAX, 1);
  expect_error("1/2/3 * * * *", LB_ECRONSYNTAX, 1);
  expect_error("1-2-3 * * * *", LB_ECRONSYNTAX, 1);
  expect_error("0 0 * * monday", LB_ECRONSYNTAX, 5);    /* names are 3 letters */
  expect_error("0 0 * * MO", LB_ECRONSYNTAX, 5);
  expect_error("0 0 * jan-feb/x *", LB_ECRONSYNTAX, 4);
  expect_error("0 0 * * */MON", LB_ECRONSYNTAX, 5);     /* a step is a number */
  expect_error("jan 0 * * *", LB_ECRONSYNTAX, 1);       /* names only where they belong */
  expect_error("0 0 * mon *", LB_ECRONSYNTAX, 4);
  expect_error("0 0 * * jan", LB_ECRONSYNTAX, 5);
  expect_error("0 0 1\x01 * *", LB_ECRONSYNTAX, 3);
  expect_error("0 0 * * +1", LB_ECRONSYNTAX, 5);
  /* never fires: the day is decided by day of month alone */
  expect_error("0 0 30 2 *", LB_ECRONNEVER, 3);
  expect_error("0 0 31 2 *", LB_ECRONNEVER, 3);
  expect_error("0 0 31 4,6,9,11 *", LB_ECRONNEVER, 3);
  expect_error("0 0 30,31 feb *", LB_ECRONNEVER, 3);
  expect_error("0 0 30 2 */2", LB_ECRONNEVER, 3);       /* starred day of week: AND */
  {
    lb_cron never;
    int64_t out;
    LB_CHECK_EQ(lb_cron_parse(&never, "0 0 30 2 *", 10), LB_ECRONNEVER);
    LB_CHECK_EQ(lb_cron_next(&never, NULL, 0, &out), LB_EINVAL);
    LB_CHECK_EQ(lb_cron_parse(&never, "0 0 L * *", 9), LB_ECRONSYNTAX);
    LB_CHECK_EQ(lb_cron_next(&never, NULL, 0, &out), LB_EINVAL);
  }
  /* accepted: day of week decides, or may decide */
  lb_cron c;
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 30 2 1", 10), 0);  /* OR: every Monday of February */
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 29 2 *", 10), 0);  /* leap years */
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 * 2 *", 9), 0);
  LB_CHECK_EQ(lb_cron_parse(NULL, "* * * * *", 9), LB_EINVAL);
  LB_CHECK_EQ(lb_cron_parse(&c, NULL, 3), LB_EINVAL);
  LB_CHECK_EQ(lb_cron_parse(&c, NULL, 0), LB_ECRONFIELDS);
  /* error position: the item at fault */
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 1,2,99 * *", 14), LB_ECRONRANGE);
  LB_CHECK_EQ(c.err_pos, 8);
  /* the parse reads exactly len bytes */
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 * * *9", 9), 0);
}

static void test_parse_masks(void) {
  lb_cron c;
  LB_CHECK_EQ(lb_cron_parse(&c, "5/15 0-23/6 1-31/10 jan-DEC/3 5-7", 33), 0);
  LB_CHECK(c.minute == ((1ull << 5) | (1ull << 20) | (1ull << 35) | (1ull << 50)));
  LB_CHECK_EQ(c.hour, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
  LB_CHECK_EQ(c.dom, (1u << 1) | (1u << 11) | (1u << 21) | (1u << 31));
  LB_CHECK_EQ(c.month, (1u << 1) | (1u << 4) | (1u << 7) | (1u << 10));
  LB_CHECK_EQ(c.dow, (1u << 0) | (1u << 5) | (1u << 6));
  LB_CHECK_EQ(c.flags, LB_CRON_FIXED);
  LB_CHECK_EQ(lb_cron_parse(&c, "*/2 3 */5 * *,1", 15), 0);
  LB_CHECK_EQ(c.flags, LB_CRON_DOM_STAR | LB_CRON_DOW_STAR);
  LB_CHECK_EQ(c.dow, 0x7f);
  LB_CHECK_EQ(lb_cron_parse(&c, "@hourly", 7), 0);
  LB_CHECK_EQ(c.flags, LB_CRON_DOM_STAR | LB_CRON_DOW_STAR);
  LB_CHECK_EQ(lb_cron_parse(&c, "@weekly", 7), 0);
  LB_CHECK_EQ(c.flags, LB_CRON_DOM_STAR | LB_CRON_FIXED);
  LB_CHECK_EQ(c.dow, 1);
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 * * */7", 11), 0);
  LB_CHECK_EQ(c.dow, 1);
}

static void test_next_limits(void) {
  lb_cron c;
  int64_t out = 0;
  LB_CHECK_EQ(lb_cron_parse(&c, "* * * * *", 9), 0);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, (int64_t)1 << 60, &out), LB_EINVAL);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, -((int64_t)1 << 60), &out), LB_EINVAL);
  LB_CHECK_EQ(lb_cron_next(NULL, NULL, 0, &out), LB_EINVAL);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, 0, NULL), LB_EINVAL);
  lb_cron zero;
  memset(&zero, 0, sizeof zero);
  LB_CHECK_EQ(lb_cron_next(&zero, NULL, 0, &out), LB_EINVAL);
  /* a struct filled by hand with bits outside the fields */
  lb_cron bad = c;
  bad.month |= 1u << 13;
  LB_CHECK_EQ(lb_cron_next(&bad, NULL, 0, &out), LB_EINVAL);
  bad = c;
  bad.dom |= 1;
  LB_CHECK_EQ(lb_cron_next(&bad, NULL, 0, &out), LB_EINVAL);
  bad = c;
  bad.hour |= 1u << 24;
  LB_CHECK_EQ(lb_cron_next(&bad, NULL, 0, &out), LB_EINVAL);
  bad = c;
  bad.minute |= 1ull << 60;
  LB_CHECK_EQ(lb_cron_next(&bad, NULL, 0, &out), LB_EINVAL);
  bad = c;
  bad.dow |= 1u << 7;
  LB_CHECK_EQ(lb_cron_next(&bad, NULL, 0, &out), LB_EINVAL);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, -1, &out), 0);
  LB_CHECK_EQ(out, 0);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, -61, &out), 0);
  LB_CHECK_EQ(out, -60);
  /* Feb 29 on a Sunday, with the day of week starred (AND): 2032-02-29 is
   * within the horizon from 2024-03-01, not from 2024-01-01; 2004 -> 2032
   * is far past it. */
  LB_CHECK_EQ(lb_cron_parse(&c, "0 0 29 2 */7", 12), 0);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, parse_iso("2024-01-01T00:00:00Z"), &out), LB_ECRONNONE);
  LB_CHECK_EQ(lb_cron_next(&c, NULL, parse_iso("2024-03-01T00:00:00Z"), &out), 0);
  LB_CHECK_EQ(out, parse_iso("2032-02-29T00:00:00Z"));
  LB_CHECK_EQ(lb_cron_next(&c, NULL, parse_iso("2004-03-01T00:00:00Z"), &out), LB_ECRONNONE);
}

/* ---- brute force ---- */

static int match_tm(const lb_cron *c, const struct tm *tm) {
  if (!(c->minute >> tm->tm_min & 1) || !(c->hour >> tm->tm_hour & 1) ||
      !(c->month >> (tm->tm_mon + 1) & 1))
    return 0;
  int dm = (int)(c->dom >> tm->tm_mday & 1), wm = (int)(c->dow >> tm->tm_wday & 1);
  if (c->flags & (LB_CRON_DOM_STAR | LB_CRON_DOW_STAR)) return dm && wm;
  return dm || wm;
}

/* Wall clock of t as seconds on the naive line (local fields read as UTC). */
static int64_t wall_of(int64_t t) {
  time_t tt = (time_t)t;
  struct tm tm;
  localtime_r(&tt, &tm);
  return (int64_t)timegm(&tm);
}

static int wall_matches(const lb_cron *c, int64_t w) {
  time_t tt = (time_t)w;
  struct tm tm;
  gmtime_r(&tt, &tm);
  return match_tm(c, &tm);
}

/* Rules of section 4.2 applied literally, minute by minute, with glibc's
 * clock (TZ must be set). Returns the fire or INT64_MAX past span. */
static int64_t brute_next(const lb_cron *c, int64_t t, int64_t span) {
  int64_t u = (t - (t % 60 + 60) % 60) + 60;
  if (!(c->flags & LB_CRON_FIXED)) {
    for (; u <= t + span; u += 60)
      if (wall_matches(c, wall_of(u))) return u;
    return INT64_MAX;
  }
  /* fixed: u fires when some matching minute W has max_wall(< u) < W <=
   * wall(u); max_wall over the past 3 days (sampled every minute and just
   * before each minute, where a transition lands). */
  int64_t max = INT64_MIN;
  for (int64_t v = u - 3 * 86400; v < u; v += 60) {
    int64_t w = wall_of(v);
    if (w > max) max = w;
    w = wall_of(v + 59);
    if (w > max) max = w;
  }
  for (; u <= t + span; u += 60) {
    int64_t w = wall_of(u);
    for (int64_t W = max - (max % 60 + 60) % 60 + 60; W <= w; W += 60)
      if (wall_matches(c, W)) return u;
    if (w > max) max = w;
    int64_t w2 = wall_of(u + 59);
    if (w2 > max) max = w2;
  }
  return INT64_MAX;
}

static void random_field(uint64_t *rs, char *out, int min, int max, int bias_star) {
  uint64_t r = lb_test_xorshift(rs);
  int kind = (int)(r % 8);
  int a = min + (int)((r >> 8) % (uint64_t)(max - min + 1));
  int b = a + (int)((r >> 20) % (uint64_t)(max - a + 1));
  int s = 1 + (int)((r >> 32) % 7);
  if (bias_star && kind < 4) kind = 0;
  switch (kind) {
  case 0: strcpy(out, "*"); break;
  case 1: sprintf(out, "*/%d", s); break;
  case 2: sprintf(out, "%d", a); break;
  case 3: sprintf(out, "%d-%d", a, b); break;
  case 4: sprintf(out, "%d-%d/%d", a, b, s); break;
  case 5: sprintf(out, "%d/%d", a, s); break;
  case 6: sprintf(out, "%d,%d", a, b); break;
  default: sprintf(out, "%d-%d,%d", a, b, min + (int)((r >> 44) % (uint64_t)(max - min + 1))); break;
  }
}

static void brute_zone(const char *zone, int cases, uint64_t seed) {
  char tzenv[128];
  snprintf(tzenv, sizeof tzenv, ":%s", zone);
  setenv("TZ", tzenv, 1);
  tzset();
  int err;
  lb_tz *z = load_zone(zone, &err);
  LB_CHECK_EQ(err, 0);
  /* instants around DST transitions of 2024 in the zones used, plus random */
  static const char *const around[] = {"2024-03-10T06:31:00Z", "2024-11-03T05:01:00Z",
                                       "2024-03-31T00:10:00Z", "2024-10-27T00:20:00Z",
                                       "2024-10-05T15:00:00Z", "2024-04-06T14:40:00Z"};
  uint64_t rs = seed;
  int checked = 0, fired = 0;
  for (int i = 0; i < cases; i++) {
    char f[5][64], expr[400];
    random_field(&rs, f[0], 0, 59, 0);
    random_field(&rs, f[1], 0, 23, 0);
    random_field(&rs, f[2], 1, 31, 1);
    random_field(&rs, f[3], 1, 12, 1);
    random_field(&rs, f[4], 0, 7, 1);
    snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
    lb_cron c;
    if (lb_cron_parse(&c, expr, strlen(expr)) != 0) continue;
    uint64_t r = lb_test_xorshift(&rs);
    int64_t t = parse_iso(around[r % 6]) - 3 * 3600 + (int64_t)((r >> 8) % (6 * 3600));
    if (r >> 40 & 1) t = t - t % 60; /* on a minute, or not */
    int64_t span = 3 * 86400;
    int64_t want = brute_next(&c, t, span), got = 0;
    int rc = lb_cron_next(&c, z, t, &got);
    int ok = rc == 0 && (want == INT64_MAX ? got > t + span : got == want);
    if (!ok) {
      char a[40], b[40], tb[40];
      fmt_iso(t, tb, sizeof tb);
      fmt_iso(want == INT64_MAX ? 0 : want, a, sizeof a);
      fmt_iso(got, b, sizeof b);
      fprintf(stderr, "  brute %s \"%s\" from %s: want %s got %s (rc %d)\n", zone, expr, tb, a, b,
              rc);
    }
    LB_CHECK(ok);
    checked++;
    fired += want != INT64_MAX;
  }
  printf("  %s: %d random expressions, %d fire within 3 days\n", zone, checked, fired);
  LB_CHECK(checked > cases / 2);
  LB_CHECK(fired > checked / 4);
  lb_tz_free(z);
}

static void test_brute_utc(void) { brute_zone("UTC", 300, 0x1234567u); }
static void test_brute_new_york(void) { brute_zone("America/New_York", 300, 0x9e3779b9u); }
static void test_brute_london(void) { brute_zone("Europe/London", 200, 0xabcdefu); }
static void test_brute_lord_howe(void) { brute_zone("Australia/Lord_Howe", 200, 0x5151u); }

/* lb_tz_offset against glibc's localtime over the years past the tables
 * (the footer rule) and the table years, hourly around transitions. */
static void offsets_match(const char *zone) {
  char tzenv[128];
  snprintf(tzenv, sizeof tzenv, ":%s", zone);
  setenv("TZ", tzenv, 1);
  tzset();
  int err;
  lb_tz *z = load_zone(zone, &err);
  LB_CHECK(z != NULL);
  if (z == NULL) return;
  int bad = 0;
  for (int64_t t = parse_iso("1990-01-01T00:00:00Z"); t < parse_iso("2070-01-01T00:00:00Z");
       t += 3600 * 7 + 60 * 15) {
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    if (tm.tm_gmtoff != lb_tz_offset(z, t) && bad++ < 3) {
      char b[40];
      fmt_iso(t, b, sizeof b);
      fprintf(stderr, "  %s at %s: glibc %ld, lb %d\n", zone, b, tm.tm_gmtoff, lb_tz_offset(z, t));
    }
  }
  LB_CHECK_EQ(bad, 0);
  lb_tz_free(z);
}

static void test_offsets(void) {
  static const char *const zones[] = {"America/New_York", "Europe/London", "Europe/Dublin",
                                      "Australia/Lord_Howe", "Australia/Sydney",
                                      "America/Sao_Paulo", "America/Santiago", "Asia/Tehran",
                                      "Africa/Casablanca", "America/Nuuk", "Pacific/Chatham",
                                      "Asia/Kolkata", "Etc/UTC"};
  for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) offsets_match(zones[i]);
}

static lb_tz *tz_from(const char *bytes, size_t n, int *err) {
  return lb_tz_new((const uint8_t *)bytes, n, err);
}

/* A hand-made version 2 file: no transitions, one type, `leaps` leap-second
 * records, and a footer. */
static size_t make_tzif_leaps(uint8_t *b, const char *footer, int leaps) {
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    memcpy(b + n, "TZif2", 5);
    memset(b + n + 5, 0, 39);
    b[n + 20 + 2 * 4 + 3] = (uint8_t)leaps; /* leapcnt */
    b[n + 20 + 4 * 4 + 3] = 1;              /* typecnt */
    b[n + 20 + 5 * 4 + 3] = 4;              /* charcnt */
    n += 44;
    memset(b + n, 0, 6); /* utoff 0, isdst 0, idx 0 */
    n += 6;
    memcpy(b + n, "UTC", 4);
    n += 4;
    size_t lsz = (size_t)leaps * (pass == 0 ? 8 : 12);
    memset(b + n, 0, lsz);
    n += lsz;
  }
  b[n++] = '\n';
  memcpy(b + n, footer, strlen(footer));
  n += strlen(footer);
  b[n++] = '\n';
  return n;
}

static size_t make_tzif(uint8_t *b, const char *footer) { return make_tzif_leaps(b, footer, 0); }

static void test_tzif_errors(void) {
  int err = 0;
  LB_CHECK(tz_from(NULL, 0, &err) == NULL);
  LB_CHECK_EQ(err, LB_EINVAL);
  LB_CHECK(tz_from("TZif", 4, &err) == NULL);
  LB_CHECK_EQ(err, LB_ETZIF);
  LB_CHECK(tz_from("# not a zone file, just some text of the right length...", 57, &err) == NULL);
  LB_CHECK_EQ(err, LB_ETZIF);
  /* leap-second zones ("right/") are refused: their times are not UTC */
  uint8_t f[256];
  size_t n = make_tzif_leaps(f, "UTC0", 1);
  LB_CHECK(lb_tz_new(f, n, &err) == NULL);
  LB_CHECK_EQ(err, LB_ETZIF);
  n = make_tzif_leaps(f, "UTC0", 0);
  lb_tz *z = lb_tz_new(f, n, &err);
  LB_CHECK(z != NULL);
  lb_tz_free(z);
  size_t len;
  uint8_t *b;
  /* every truncation of a real file is refused, never read past its end */
  b = read_file(ZONEINFO "America/New_York", &len);
  LB_CHECK(b != NULL);
  if (b != NULL) {
    for (size_t n = 0; n < len; n++) {
      uint8_t *cut = malloc(n ? n : 1);
      memcpy(cut, b, n);
      lb_tz *z = lb_tz_new(cut, n, &err);
      LB_CHECK(z == NULL);
      lb_tz_free(z);
      free(cut);
    }
    free(b);
  }
  /* footers */
  n = make_tzif(f, "EST5EDT,M3.2.0,M11.1.0");
  z = lb_tz_new(f, n, &err);
  LB_CHECK(z != NULL);
  LB_CHECK_EQ(lb_tz_offset(z, parse_iso("2031-07-01T00:00:00Z")), -4 * 3600);
  LB_CHECK_EQ(lb_tz_offset(z, parse_iso("2031-01-01T00:00:00Z")), -5 * 3600);
  lb_tz_free(z);
  n = make_tzif(f, "<+0330>-3:30");
  z = lb_tz_new(f, n, &err);
  LB_CHECK(z != NULL);
  LB_CHECK_EQ(lb_tz_offset(z, 0), 3 * 3600 + 1800);
  lb_tz_free(z);
  n = make_tzif(f, "EST5EDT4,0/0,J365/25"); /* DST all year */
  z = lb_tz_new(f, n, &err);
  LB_CHECK(z != NULL);
  for (int64_t t = parse_iso("2030-12-30T00:00:00Z"); t < parse_iso("2031-01-03T00:00:00Z"); t += 1800)
    LB_CHECK_EQ(lb_tz_offset(z, t), -4 * 3600);
  lb_tz_free(z);
  n = make_tzif(f, "");
  z = lb_tz_new(f, n, &err);
  LB_CHECK(z != NULL);
  LB_CHECK_EQ(lb_tz_offset(z, 1000), 0);
  lb_tz_free(z);
  static const char *const badf[] = {"E5", "EST", "EST5EDT,", "EST5EDT,M3.2.0",
                                     "EST5EDT,M13.2.0,M11.1.0", "EST5EDT,M3.6.0,M11.1.0",
                                     "EST5EDT,M3.2.7,M11.1.0", "EST5EDT,J0,J365",
                                     "EST5EDT,366,1", "<AB>5", "<A%B>5", "EST25",
                                     "EST5EDT,M3.2.0/168,M11.1.0", "EST5EDT,M3.2.0,M11.1.0x"};
  for (size_t i = 0; i < sizeof badf / sizeof badf[0]; i++) {
    n = make_tzif(f, badf[i]);
    z = lb_tz_new(f, n, &err);
    if (z != NULL) fprintf(stderr, "  footer \"%s\" accepted\n", badf[i]);
    LB_CHECK(z == NULL);
    lb_tz_free(z);
  }
  lb_tz_free(NULL);
  LB_CHECK_EQ(lb_tz_offset(NULL, 12345), 0);
}

int main(void) {
  LB_RUN(test_conformance_tsv);
  LB_RUN(test_more_vectors);
  LB_RUN(test_negative);
  LB_RUN(test_parse_masks);
  LB_RUN(test_next_limits);
  LB_RUN(test_brute_utc);
  LB_RUN(test_brute_new_york);
  LB_RUN(test_brute_london);
  LB_RUN(test_brute_lord_howe);
  LB_RUN(test_offsets);
  LB_RUN(test_tzif_errors);
  return LB_DONE();
}
