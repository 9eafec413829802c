/*
 * quant.c - logits to integer frequency tables, bit-identical everywhere.
 *
 * The encoder and the decoder must build the same table from the same logits
 * on any machine. So: only IEEE-754 single-precision +, -, *, / and
 * conversions, in a fixed order; bt's own exp (no libm); no FMA contraction
 * (the build has -ffp-contract=off); then integers. Float expressions must be
 * evaluated in their own type, which x87 code does not do.
 */
#include "coder/coder.h"

#include <assert.h>
#include <float.h>
#include <math.h>

#include "kernels/mathfn.h"

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "bt's coder needs FLT_EVAL_METHOD == 0 (SSE2 on x86: -mfpmath=sse -msse2)"
#endif

void bt_quantize_logits(const float logits[256], uint32_t freq[256]) {
  /* Max over the non-NaN logits (NaN compares false and is skipped). The
   * loops below are written branch-free so compilers vectorise them; none of
   * them reassociates anything, so the bits do not depend on that. */
  float m = -INFINITY;
  for (int i = 0; i < 256; i++) m = logits[i] > m ? logits[i] : m;

  float e[256];
  if (m == -INFINITY) {
    for (int i = 0; i < 256; i++) e[i] = 1.0f; /* nothing usable: uniform */
  } else {
    for (int i = 0; i < 256; i++) {
      float l = logits[i];
      /* l == m also covers m = +inf, where l - m would be NaN. */
      float d = l == m ? 0.0f : l - m;
      float v = bt_expf_inline(d); /* d <= 0 or -inf: v in [0, 1] */
      e[i] = v == v ? v : 0.0f;    /* NaN logit: probability floor only */
    }
  }
  /* The sum in one fixed order: eight running sums over i mod 8, then
   * combined pairwise. The max contributes exp(0) = 1 exactly, so
   * 1 <= s <= 256 and the scale is finite. */
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 256; i += 8)
    for (int j = 0; j < 8; j++) part[j] += e[i + j];
  float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  float scale = (float)(BT_FREQ_TOTAL - 256) / s;

  for (int i = 0; i < 256; i++) /* e * scale in [0, 2^24] up to rounding */
    freq[i] = (uint32_t)(int32_t)(e[i] * scale) + 1;
  uint32_t total = 0;
  int big = 0;
  for (int i = 0; i < 256; i++) {
    total += freq[i];
    big = freq[i] > freq[big] ? i : big; /* first index on ties */
  }
  /* The truncations and the rounding of s leave total a little off 2^24;
   * the largest frequency (>= 2^24 / 256) absorbs the difference. */
  int64_t diff = (int64_t)BT_FREQ_TOTAL - (int64_t)total;
  assert((int64_t)freq[big] + diff >= 1);
  freq[big] = (uint32_t)((int64_t)freq[big] + diff);
}

void bt_freq_cumulative(const uint32_t freq[256], uint32_t cum[257]) {
  cum[0] = 0;
  for (int i = 0; i < 256; i++) cum[i + 1] = cum[i] + freq[i];
}

double bt_freq_cost_bits(const uint32_t freq[256], int sym) {
  return (double)BT_FREQ_BITS - log2((double)freq[sym]);
}

double bt_logits_logloss_bits(const float logits[256], int sym) {
  double m = -INFINITY;
  for (int i = 0; i < 256; i++)
    if (logits[i] > m) m = logits[i];
  if (m == -INFINITY || isinf(m)) return NAN;
  double s = 0.0;
  for (int i = 0; i < 256; i++) s += exp((double)logits[i] - m);
  return (m + log(s) - (double)logits[sym]) / log(2.0);
}
