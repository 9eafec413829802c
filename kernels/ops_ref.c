/*
 * ops_ref.c - naive references for the elementwise and row ops: the textbook
 * formulas, one element at a time, in double precision with libm. Tests only;
 * not bit-portable and not fast.
 */
#include "kernels/kernels.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

void bt_embedding_forward_naive(float *out, const uint16_t *tok, const float *wte, int N, int C,
                                float scale) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      out[(size_t)n * C + c] = (float)((double)wte[(size_t)tok[n] * C + c] * scale);
}

/* Row by row in float, as the fast path: this is a float scatter-add. */
void bt_embedding_backward_naive(float *dwte, const float *dout, const uint16_t *tok, int N,
                                 int C, float scale) {
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      dwte[(size_t)tok[n] * C + c] += dout[(size_t)n * C + c] * scale;
}

void bt_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    double m = 0, v = 0;
    for (int c = 0; c < C; c++)
      m += x[c];
    m /= C;
    for (int c = 0; c < C; c++)
      v += (x[c] - m) * (x[c] - m);
    v /= C;
    double rs = 1.0 / sqrt(v + 1e-5);
    for (int c = 0; c < C; c++)
      out[(size_t)n * C + c] = (float)((x[c] - m) * rs * w[c] + b[c]);
    mean[n] = (float)m;
    rstd[n] = (float)rs;
  }
}

void bt_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C) {
  for (int c = 0; c < C; c++) {
    double sw = 0, sb = 0;
    for (int n = 0; n < N; n++) {
      double xh = ((double)inp[(size_t)n * C + c] - mean[n]) * rstd[n];
      sw += dout[(size_t)n * C + c] * xh;
      sb += dout[(size_t)n * C + c];
    }
    dw[c] = (float)(dw[c] + sw);
    db[c] = (float)(db[c] + sb);
  }
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
    double m1 = 0, m2 = 0;
    for (int c = 0; c < C; c++) {
      double xh = ((double)x[c] - mean[n]) * rstd[n];
      m1 += (double)w[c] * g[c];
      m2 += (double)w[c] * g[c] * xh;
    }
    m1 /= C;
    m2 /= C;
    for (int c = 0; c < C; c++) {
      double xh = ((double)x[c] - mean[n]) * rstd[n];
      double d = rstd[n] * ((double)w[c] * g[c] - m1 - xh * m2);
      dinp[(size_t)n * C + c] = (float)(dinp[(size_t)n * C + c] + d);
    }
  }
}

static double gelu_d(double x) {
  const double k = 0.79788456080286535588; /* sqrt(2/pi) */
  return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

static double gelu_grad_d(double x) {
  const double k = 0.79788456080286535588; /* sqrt(2/pi) */
  double t = tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

void bt_gelu_forward_naive(float *out, const float *inp, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = (float)gelu_d(inp[i]);
}

void bt_gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++)
    dinp[i] = (float)(dinp[i] + (double)dout[i] * gelu_grad_d(inp[i]));
}

static void rope_naive(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int C,
                       int H, double sign) {
  int hs = C / H, half = hs / 2;
  assert(hs * H == C && half * 2 == hs);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int part = 0; part < 2; part++)
        for (int h = 0; h < H; h++) {
          float *x = qkv + ((size_t)b * T + t) * 3 * C + (size_t)part * C + (size_t)h * hs;
          for (int i = 0; i < half; i++) {
            double c = cos_t[(size_t)t * half + i], s = sign * sin_t[(size_t)t * half + i];
            double x0 = x[i], x1 = x[i + half];
            x[i] = (float)(x0 * c - x1 * s);
            x[i + half] = (float)(x1 * c + x0 * s);
          }
        }
}

void bt_rope_forward_naive(float *qkv, const float *cos_t, const float *sin_t, int B, int T,
                           int C, int H) {
  rope_naive(qkv, cos_t, sin_t, B, T, C, H, 1.0);
}

void bt_rope_backward_naive(float *dqkv, const float *cos_t, const float *sin_t, int B, int T,
                            int C, int H) {
  rope_naive(dqkv, cos_t, sin_t, B, T, C, H, -1.0);
}

/* log-sum-exp of a row, shifted by its max */
static double lse_naive(const float *z, int V) {
  double mx = z[0], s = 0;
  for (int i = 1; i < V; i++)
    mx = z[i] > mx ? z[i] : mx;
  for (int i = 0; i < V; i++)
    s += exp(z[i] - mx);
  return mx + log(s);
}

void bt_crossentropy_forward_naive(float *losses, const float *logits, const uint16_t *targets,
                                   int N, int V) {
  for (int n = 0; n < N; n++) {
    const float *z = logits + (size_t)n * V;
    assert(targets[n] < V);
    losses[n] = (float)(lse_naive(z, V) - z[targets[n]]);
  }
}

void bt_crossentropy_backward_naive(float *dlogits, const float *logits, const uint16_t *targets,
                                    int N, int V, float dloss) {
  for (int n = 0; n < N; n++) {
    const float *z = logits + (size_t)n * V;
    assert(targets[n] < V);
    double lse = lse_naive(z, V);
    for (int i = 0; i < V; i++) {
      double p = exp(z[i] - lse) - (i == targets[n] ? 1.0 : 0.0);
      dlogits[(size_t)n * V + i] = (float)(dlogits[(size_t)n * V + i] + p * dloss);
    }
  }
}

void bt_adamw_update_naive(float *params, const float *grads, float *m, float *v, size_t n,
                           float lr, float beta1, float beta2, float eps, float weight_decay,
                           int t) {
  assert(t >= 1);
  double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
  for (size_t i = 0; i < n; i++) {
    double g = grads[i], p = params[i];
    double mi = beta1 * (double)m[i] + (1.0 - beta1) * g;
    double vi = beta2 * (double)v[i] + (1.0 - beta2) * g * g;
    m[i] = (float)mi;
    v[i] = (float)vi;
    params[i] = (float)(p - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + weight_decay * p));
  }
}
