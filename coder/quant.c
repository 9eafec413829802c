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

/* The quantiser over V symbols, e (V floats) its scratch. With V = 256
 * these are the operations bt_quantize_logits has always done, in order. */
static inline float quantize(const float *logits, int V, uint32_t *freq, float *e) {
  /* Max over the non-NaN logits (NaN compares false and is skipped). The
   * loops below are written branch-free so compilers vectorise them; none of
   * them reassociates anything, so the bits do not depend on that. */
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = logits[i] > m ? logits[i] : m;

  if (m == -INFINITY) {
    for (int i = 0; i < V; i++) e[i] = 1.0f; /* nothing usable: uniform */
  } else {
    for (int i = 0; i < V; i++) {
      float l = logits[i];
      /* l == m also covers m = +inf, where l - m would be NaN. */
      float d = l == m ? 0.0f : l - m;
      float v = bt_expf_inline(d); /* d <= 0 or -inf: v in [0, 1] */
      e[i] = v == v ? v : 0.0f;    /* NaN logit: probability floor only */
    }
  }
  /* The sum in one fixed order: eight running sums over i mod 8 (a tail of
   * V mod 8 goes to the first ones), then combined pairwise. The max
   * contributes exp(0) = 1 exactly, so 1 <= s <= V and the scale is
   * finite. */
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int V8 = V & ~7;
  for (int i = 0; i < V8; i += 8)
    for (int j = 0; j < 8; j++) part[j] += e[i + j];
  for (int i = V8; i < V; i++) part[i - V8] += e[i];
  float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  float scale = (float)(BT_FREQ_TOTAL - (uint32_t)V) / s;

  for (int i = 0; i < V; i++) /* e * scale in [0, 2^24] up to rounding */
    freq[i] = (uint32_t)(int32_t)(e[i] * scale) + 1;
  uint32_t total = 0;
  int big = 0;
  for (int i = 0; i < V; i++) {
    total += freq[i];
    big = freq[i] > freq[big] ? i : big; /* first index on ties */
  }
  /* The truncations and the rounding of s leave total a little off 2^24
   * (under by less than V); the largest frequency (>= 2^24 / V) absorbs
   * the difference. */
  int64_t diff = (int64_t)BT_FREQ_TOTAL - (int64_t)total;
  assert((int64_t)freq[big] + diff >= 1);
  freq[big] = (uint32_t)((int64_t)freq[big] + diff);
  return m == -INFINITY || m == INFINITY ? 0.0f : s; /* 0: no model probability to report */
}

void bt_quantize_logits(const float logits[256], uint32_t freq[256]) {
  float e[256];
  quantize(logits, 256, freq, e);
}

void bt_quantize_logits_v(const float *logits, int V, uint32_t *freq, float *scratch) {
  assert(V >= 1 && V <= BT_MAX_SYMBOLS);
  quantize(logits, V, freq, scratch);
}

double bt_quantize_logits_v_loss(const float *logits, int V, uint32_t *freq, float *scratch, int sym) {
  assert(V >= 1 && V <= BT_MAX_SYMBOLS && sym >= 0 && sym < V);
  const float s = quantize(logits, V, freq, scratch);
  /* scratch[sym] / s is softmax(logits)[sym] in single precision; where it
   * underflowed, or the logits had no finite maximum, the double-precision
   * report says what it can */
  if (s > 0.0f && scratch[sym] > 0.0f)
    return -log2((double)scratch[sym] / (double)s);
  return bt_logits_logloss_bits_v(logits, V, sym);
}

void bt_freq_cumulative_v(const uint32_t *freq, int V, uint32_t *cum) {
  cum[0] = 0;
  for (int i = 0; i < V; i++) cum[i + 1] = cum[i] + freq[i];
}

int bt_freq_find(const uint32_t *cum, int V, uint32_t target) {
  int lo = 0, hi = V; /* cum[lo] <= target < cum[hi] */
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (cum[mid] <= target)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

void bt_freq_cumulative(const uint32_t freq[256], uint32_t cum[257]) {
  cum[0] = 0;
  for (int i = 0; i < 256; i++) cum[i + 1] = cum[i] + freq[i];
}

double bt_freq_cost_bits(const uint32_t freq[256], int sym) {
  return (double)BT_FREQ_BITS - log2((double)freq[sym]);
}

double bt_logits_logloss_bits_v(const float *logits, int V, int sym) {
  double m = -INFINITY;
  for (int i = 0; i < V; i++)
    if (logits[i] > m) m = logits[i];
  if (m == -INFINITY || isinf(m)) return NAN;
  double s = 0.0;
  for (int i = 0; i < V; i++) s += exp((double)logits[i] - m);
  return (m + log(s) - (double)logits[sym]) / log(2.0);
}

double bt_logits_logloss_bits(const float logits[256], int sym) { return bt_logits_logloss_bits_v(logits, 256, sym); }
