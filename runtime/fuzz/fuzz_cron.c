/* fuzz_cron.c: libFuzzer target for the lb_cron parser, the next-fire search
 * and the TZif reader.
 *
 * First byte even: the rest is a cron expression. Properties: never crash
 * (ASan/UBSan); a parsed expression has a non-empty mask in every field;
 * in UTC, next(t) > t, it is a whole minute, and next(next(t) - 1) ==
 * next(t); a failed parse names a field 0..5.
 * First byte odd: the rest is TZif data. A zone that loads gives offsets
 * within RFC 8536's bounds and a next fire > t for "30 2 * * *" and
 * "* * * * *". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lb_cron.h"

static const int64_t TS[] = {0, 1700000000, 1710054000, 4102444800, -2208988800, 1730611800};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 1) == 0) {
    lb_cron c;
    int rc = lb_cron_parse(&c, (const char *)data + 1, size - 1);
    if (rc != 0) {
      if (c.err_field < 0 || c.err_field > 5 || c.err_pos < 0 || (size_t)c.err_pos > size - 1) abort();
      return 0;
    }
    if (!c.minute || !c.hour || !c.dom || !c.month || !c.dow) abort();
    for (size_t i = 0; i < sizeof TS / sizeof TS[0]; i++) {
      int64_t t = TS[i] + (int64_t)data[0] * 37, out, again;
      rc = lb_cron_next(&c, NULL, t, &out);
      if (rc == LB_ECRONNONE) continue;
      if (rc != 0 || out <= t || out % 60 != 0) abort();
      if (lb_cron_next(&c, NULL, out - 1, &again) != 0 || again != out) abort();
    }
    return 0;
  }
  int err = 0;
  lb_tz *z = lb_tz_new(data + 1, size - 1, &err);
  if (z == NULL) {
    if (err != LB_ETZIF && err != LB_ENOMEM) abort();
    return 0;
  }
  lb_cron fixed, every;
  if (lb_cron_parse(&fixed, "30 2 * * *", 10) != 0 || lb_cron_parse(&every, "* * * * *", 9) != 0)
    abort();
  for (size_t i = 0; i < sizeof TS / sizeof TS[0]; i++) {
    int32_t off = lb_tz_offset(z, TS[i]);
    if (off < -89999 || off > 93599) abort();
    int64_t out;
    int rc = lb_cron_next(&fixed, z, TS[i], &out);
    if (rc == 0 && out <= TS[i]) abort();
    if (rc != 0 && rc != LB_ECRONNONE) abort();
    rc = lb_cron_next(&every, z, TS[i], &out);
    if (rc == 0 && out <= TS[i]) abort();
    if (rc != 0 && rc != LB_ECRONNONE) abort();
  }
  lb_tz_free(z);
  return 0;
}
