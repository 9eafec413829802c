/*
 * attention.c - causal multi-head attention: the public entry points, which
 * dispatch to the per-ISA kernels of attention_impl.c, and the naive
 * references.
 */
#include "kernels/isa_impl.h"
#include "kernels/kernels.h"
#include "kernels/prof.h"

#include <math.h>
#include <stddef.h>

/* Return 0, or -1 when their scratch (a few hundred KiB) cannot be allocated. */
BT_DECLARE_ISA3(int, bt_attention_forward_impl,
                (float *out, float *lse, const float *qkv, int B, int T, int C, int H))
BT_DECLARE_ISA3(int, bt_attention_backward_impl,
                (float *dqkv, const float *dout, const float *qkv, const float *out,
                 const float *lse, int B, int T, int C, int H))

/* bfloat16 products (attention_impl.c): vdpbf16ps on avx512 where the CPU
 * has it, else the same arithmetic in scalar C. */
int bt_attention_forward_bf16_impl_scalar(float *out, float *lse, const float *qkv, int B, int T,
                                          int C, int H);
int bt_attention_backward_bf16_impl_scalar(float *dqkv, const float *dout, const float *qkv,
                                           const float *out, const float *lse, int B, int T, int C,
                                           int H);
#ifdef BT_HAVE_BF16_KERNEL
int bt_attention_forward_bf16_impl_avx512(float *out, float *lse, const float *qkv, int B, int T,
                                          int C, int H);
int bt_attention_backward_bf16_impl_avx512(float *dqkv, const float *dout, const float *qkv,
                                           const float *out, const float *lse, int B, int T, int C,
                                           int H);
#define BF16_PICK(name) (bt_bf16_available() ? name##_avx512 : name##_scalar)
#else
#define BF16_PICK(name) name##_scalar
#endif

/* QK^T and PV over the causal pairs, all heads: 4 C FLOPs a pair. */
static double attention_flops(int B, int T, int C) { return 4.0 * B * (double)T * (T + 1) / 2 * C; }

void bt_attention_forward(float *out, float *lse, const float *qkv, int B, int T,
                          int C, int H) {
  const double t0 = bt_prof_begin();
  const int r = bt_gemm_get_backend() == BT_GEMM_BF16
                    ? BF16_PICK(bt_attention_forward_bf16_impl)(out, lse, qkv, B, T, C, H)
                    : BT_PICK_ISA(bt_attention_forward_impl)(out, lse, qkv, B, T, C, H);
  /* Out of memory: the references need none, only time. */
  if (r != 0)
    bt_attention_forward_naive(out, lse, qkv, B, T, C, H);
  bt_prof_end(BT_PROF_ATTN_FWD, t0, attention_flops(B, T, C));
}

void bt_attention_backward(float *dqkv, const float *dout, const float *qkv,
                           const float *out, const float *lse, int B, int T, int C,
                           int H) {
  const double t0 = bt_prof_begin();
  const int r =
      bt_gemm_get_backend() == BT_GEMM_BF16
          ? BF16_PICK(bt_attention_backward_bf16_impl)(dqkv, dout, qkv, out, lse, B, T, C, H)
          : BT_PICK_ISA(bt_attention_backward_impl)(dqkv, dout, qkv, out, lse, B, T, C, H);
  /* The kernels fail before writing anything, so this never adds twice. */
  if (r != 0)
    bt_attention_backward_naive(dqkv, dout, qkv, out, lse, B, T, C, H);
  bt_prof_end(BT_PROF_ATTN_BWD, t0, 2.0 * attention_flops(B, T, C)); /* dP, dQ, dK, dV */
}

/* ==================================================================== */
/* Naive references                                                     */
/* ==================================================================== */

/*
 * Straight from the definition, in double, one (query, key) pair at a time;
 * scores are recomputed instead of stored, so no scratch memory at all (they
 * are also the out-of-memory fallback). Quadratic in T and in hs: small
 * shapes only.
 */

#define REF_CHUNK 16 /* output columns accumulated in double at a time */

static double dot_d(const float *a, const float *b, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++)
    s += (double)a[i] * b[i];
  return s;
}

void bt_attention_forward_naive(float *out, float *lse, const float *qkv, int B,
                                int T, int C, int H) {
  const int hs = C / H;
  const ptrdiff_t ld = 3 * (ptrdiff_t)C;
  const double scale = 1.0 / sqrt((double)hs);
#pragma omp parallel for schedule(dynamic, 1)
  for (long bh = 0; bh < (long)B * H; bh++) {
    const int b = (int)(bh / H), h = (int)(bh % H);
    const float *base = qkv + (ptrdiff_t)b * T * ld + h * hs;
    for (int i = 0; i < T; i++) {
      const float *q = base + i * ld;
      double m = -INFINITY, l = 0.0;
      for (int j = 0; j <= i; j++)
        m = fmax(m, scale * dot_d(q, base + j * ld + C, hs));
      for (int j = 0; j <= i; j++)
        l += exp(scale * dot_d(q, base + j * ld + C, hs) - m);
      for (int d0 = 0; d0 < hs; d0 += REF_CHUNK) {
        int nd = hs - d0 < REF_CHUNK ? hs - d0 : REF_CHUNK;
        double o[REF_CHUNK] = {0};
        for (int j = 0; j <= i; j++) {
          double p = exp(scale * dot_d(q, base + j * ld + C, hs) - m) / l;
          const float *v = base + j * ld + 2 * C + d0;
          for (int d = 0; d < nd; d++)
            o[d] += p * v[d];
        }
        for (int d = 0; d < nd; d++)
          out[((ptrdiff_t)b * T + i) * C + h * hs + d0 + d] = (float)o[d];
      }
      lse[((ptrdiff_t)b * H + h) * T + i] = (float)(m + log(l));
    }
  }
}

/* For the pair (query i, key j): P_ij and dS_ij = P_ij (dP_ij - D_i). */
static double ref_ds(const float *qi, const float *kj, const float *vj,
                     const float *doi, double lse_i, double D_i, int hs,
                     double scale, double *p_out) {
  double p = exp(scale * dot_d(qi, kj, hs) - lse_i);
  *p_out = p;
  return p * (dot_d(doi, vj, hs) - D_i);
}

void bt_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                 const float *out, const float *lse, int B, int T,
                                 int C, int H) {
  const int hs = C / H;
  const ptrdiff_t ld = 3 * (ptrdiff_t)C;
  const double scale = 1.0 / sqrt((double)hs);
#pragma omp parallel for schedule(dynamic, 1)
  for (long bh = 0; bh < (long)B * H; bh++) {
    const int b = (int)(bh / H), h = (int)(bh % H);
    const float *base = qkv + (ptrdiff_t)b * T * ld + h * hs;
    const float *obase = out + (ptrdiff_t)b * T * C + h * hs;
    const float *gbase = dout + (ptrdiff_t)b * T * C + h * hs;
    const float *L = lse + ((ptrdiff_t)b * H + h) * T;
    float *dbase = dqkv + (ptrdiff_t)b * T * ld + h * hs;
#define Q_(i) (base + (i) * ld)
#define K_(j) (base + (j) * ld + C)
#define V_(j) (base + (j) * ld + 2 * C)
#define DO_(i) (gbase + (ptrdiff_t)(i) * C)
#define D_(i) dot_d(gbase + (ptrdiff_t)(i) * C, obase + (ptrdiff_t)(i) * C, hs)
    /* dQ_i = scale sum_{j<=i} dS_ij K_j */
    for (int i = 0; i < T; i++) {
      double Di = D_(i);
      for (int d0 = 0; d0 < hs; d0 += REF_CHUNK) {
        int nd = hs - d0 < REF_CHUNK ? hs - d0 : REF_CHUNK;
        double acc[REF_CHUNK] = {0};
        for (int j = 0; j <= i; j++) {
          double p, ds = ref_ds(Q_(i), K_(j), V_(j), DO_(i), L[i], Di, hs, scale, &p);
          for (int d = 0; d < nd; d++)
            acc[d] += ds * K_(j)[d0 + d];
        }
        for (int d = 0; d < nd; d++)
          dbase[i * ld + d0 + d] += (float)(scale * acc[d]);
      }
    }
    /* dK_j = scale sum_{i>=j} dS_ij Q_i;  dV_j = sum_{i>=j} P_ij dO_i */
    for (int j = 0; j < T; j++) {
      for (int d0 = 0; d0 < hs; d0 += REF_CHUNK) {
        int nd = hs - d0 < REF_CHUNK ? hs - d0 : REF_CHUNK;
        double ak[REF_CHUNK] = {0}, av[REF_CHUNK] = {0};
        for (int i = j; i < T; i++) {
          double p, ds = ref_ds(Q_(i), K_(j), V_(j), DO_(i), L[i], D_(i), hs, scale, &p);
          for (int d = 0; d < nd; d++) {
            ak[d] += ds * Q_(i)[d0 + d];
            av[d] += p * DO_(i)[d0 + d];
          }
        }
        for (int d = 0; d < nd; d++) {
          dbase[j * ld + C + d0 + d] += (float)(scale * ak[d]);
          dbase[j * ld + 2 * C + d0 + d] += (float)av[d];
        }
      }
    }
#undef Q_
#undef K_
#undef V_
#undef DO_
#undef D_
  }
}
