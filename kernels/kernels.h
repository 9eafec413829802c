/*
 * kernels.h - bt's compute kernels: GEMM, attention and the transformer ops,
 * forward and backward, each with a naive reference beside the fast one.
 *
 * Conventions (llm.c style):
 *  - Tensors are row-major float32; the shape is written on every signature.
 *  - Outputs come first. Backward functions ACCUMULATE (+=) into every gradient
 *    they produce, including input gradients; callers zero them.
 *  - Functions parallelise internally with OpenMP over independent outputs only.
 *    No reduction order depends on the thread count, the ISA path or the batch
 *    size: the same inputs give the same bits on any of them (docs/numerics.md).
 *    Exceptions are marked "not bit-portable".
 *  - Nothing here prints, exits or allocates memory it does not free.
 */
#ifndef BT_KERNELS_H
#define BT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==================================================================== */
/* ISA dispatch and threads                                              */
/* ==================================================================== */

typedef enum { BT_ISA_SCALAR = 0, BT_ISA_AVX2 = 1, BT_ISA_AVX512 = 2 } bt_isa;

/* Best path this CPU and OS support (cpuid + xgetbv). */
bt_isa bt_isa_detect(void);
/* Path the kernels use now. Starts as bt_isa_detect(), lowered by the
 * environment variable BT_ISA=scalar|avx2|avx512 when that is supported. */
bt_isa bt_isa_get(void);
/* Force a path (tests, CLIs). Returns 0, or -1 if the CPU lacks it (unchanged). */
int bt_isa_set(bt_isa isa);
/* "scalar", "avx2", "avx512". */
const char *bt_isa_name(bt_isa isa);
/* Parses a name as above; returns 0 on success, -1 otherwise. */
int bt_isa_parse(const char *s, bt_isa *out);

/* Sets the kernels' thread count (OpenMP and OpenBLAS). n <= 0: leave default. */
void bt_set_threads(int n);
int bt_get_threads(void);
/* The calling thread's OpenMP and BLAS thread counts, to give back after a
 * library call changed them (codec.h's bt_codec_set_threads). */
void bt_threads_save(int saved[2]);
void bt_threads_restore(const int saved[2]);

/* A 64-byte aligned buffer of at least `bytes` for the calling thread, slot
 * 0..3, kept and reused by later calls (contents not preserved when it grows).
 * Owned by the library; NULL if out of memory. Slot 0: GEMM packing; slot 1:
 * attention tiles; 2-3: free for other kernels. */
void *bt_scratch(int slot, size_t bytes);
/* Frees the calling thread's scratch buffers. */
void bt_scratch_free(void);

/* Measures this machine's fp32 FMA peak in GFLOP/s on the given path and
 * thread count (a register-only FMA loop, ~0.2 s). Used for MFU figures. */
double bt_peak_gflops(bt_isa isa, int threads);

/* Measures the rate at which `threads` threads together read a buffer of
 * `bytes` (each its own slice, best of 3 passes), in GB/s: with a buffer far
 * larger than the caches, the memory bandwidth decoding is bound by (it reads
 * a stream's whole K/V cache for every byte). 0 if the buffer cannot be had. */
double bt_read_gbs(int threads, size_t bytes);

/* ==================================================================== */
/* Own transcendental functions: identical bits on every path            */
/* ==================================================================== */

/* exp(x) for float, max rel. error ~2 ulp; exp(-inf) = 0, overflow -> +inf. */
float bt_expf(float x);
/* tanh(x), abs. error < 1e-6. */
float bt_tanhf(float x);
/* out[i] = bt_expf(in[i]); may alias. */
void bt_exp_vec(float *out, const float *in, size_t n);

/* ==================================================================== */
/* bfloat16, as the inference KV cache stores keys and values            */
/* ==================================================================== */

/* The nearest bfloat16 (the top 16 bits of a float), ties to even, in
 * integer arithmetic; NaN becomes 0x7fc0 (kernels/bf16.h). Same bits on every
 * path. */
uint16_t bt_f32_to_bf16(float x);
/* The bfloat16's exact float value. */
float bt_bf16_to_f32(uint16_t h);

/* ==================================================================== */
/* binary16, as inference keeps the weights of a half checkpoint         */
/* ==================================================================== */

/* The half's exact float value (kernels/f16.h). */
float bt_f16_to_f32(uint16_t h);
/* 1 and *h = the half if x is exactly one (NaN is not), else 0. */
int bt_f32_to_f16_exact(float x, uint16_t *h);

/* ==================================================================== */
/* GEMM                                                                  */
/* ==================================================================== */

/*
 * C (M,N) = [C +] op(A) (M,K) . op(B) (K,N), row-major.
 * op(A) is A stored (M,K) with stride lda when ta == 0, or A^T with A stored
 * (K,M) when ta != 0; likewise op(B) is B (K,N) or B^T with B stored (N,K).
 *
 * Contract: every C element is ONE fused-multiply-add chain over k = 0..K-1 in
 * increasing order, started from +0.0f (or from C's old value if accumulate).
 * So bt_gemm, bt_gemm_st and bt_gemm_naive give identical bits on every ISA
 * path and thread count. Threads split M and N, never K.
 */
void bt_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda,
             const float *B, int ldb, float *C, int ldc, int accumulate);
/* Same contract, on the calling thread only (for use inside parallel regions). */
void bt_gemm_st(int ta, int tb, int M, int N, int K, const float *A, int lda,
                const float *B, int ldb, float *C, int ldc, int accumulate);
/* The reference: a triple loop of fmaf. */
void bt_gemm_naive(int ta, int tb, int M, int N, int K, const float *A, int lda,
                   const float *B, int ldb, float *C, int ldc, int accumulate);
/* C (M,N) = A (M,K) . B (K,N), row-major, with B binary16: each half widened
 * exactly, then the contract above, so the bits of bt_gemm(0, 0, ...) on the
 * widened B. On the calling thread; tiled for few rows (decoding steps read
 * half the weight bytes). */
void bt_gemm_f16b_st(int M, int N, int K, const float *A, int lda, const uint16_t *B,
                     int ldb, float *C, int ldc);
/* The same with B in column panels of 16: B (k, n) at B[(n / 16) pst + 16 k
 * + n % 16], pst >= 16 K, so that a tile of columns streams its panel in
 * order and uses every byte of each line it reads. The same bits. */
void bt_gemm_f16p_st(int M, int N, int K, const float *A, int lda, const uint16_t *B, long pst,
                     float *C, int ldc);
/* OpenBLAS cblas_sgemm with the same arguments. Fast on CPUs without AVX-512,
 * but NOT bit-portable: training only. */
void bt_gemm_blas(int ta, int tb, int M, int N, int K, const float *A, int lda,
                  const float *B, int ldb, float *C, int ldc, int accumulate);

/* bfloat16 inputs, float32 accumulation (bt-train --precision bf16): op(A)
 * and op(B) rounded to bfloat16 (bt_f32_to_bf16), k taken in pairs, each
 * pair p doing what AVX512_BF16's vdpbf16ps does:
 *   acc = ftz(fma(a[2p+1], b[2p+1], daz(acc)));  acc = ftz(fma(a[2p], b[2p], acc))
 * (subnormal bfloat16 inputs read as zero; a K that is odd ends with a zero
 * pair member), from +0 or C's old value. bt_gemm_bf16 runs it with
 * vdpbf16ps where bt_bf16_available(), else the scalar reference: the same
 * bits either way, on any thread count. Not used for coding. */
void bt_gemm_bf16(int ta, int tb, int M, int N, int K, const float *A, int lda,
                  const float *B, int ldb, float *C, int ldc, int accumulate);
void bt_gemm_bf16_ref(int ta, int tb, int M, int N, int K, const float *A, int lda,
                      const float *B, int ldb, float *C, int ldc, int accumulate);
/* 1 if the CPU has AVX512_BF16, this build has its kernel, and the active
 * ISA is avx512. */
int bt_bf16_available(void);
/* vdpbf16ps's FLOPs per second over the fp32 FMA's, measured on one thread
 * (~0.1 s, once a process); 0 where bt_bf16_available() is 0. bf16 GEMMs can
 * only pay where it is well above 1. */
double bt_bf16_peak_ratio(void);

/* Which GEMM the training ops called from this thread use: own kernels
 * (bit-portable), OpenBLAS, or bfloat16 inputs. The setting is per thread. */
typedef enum { BT_GEMM_AUTO = 0, BT_GEMM_OWN = 1, BT_GEMM_BLAS = 2, BT_GEMM_BF16 = 3 } bt_gemm_backend;
void bt_gemm_set_backend(bt_gemm_backend b);
/* This thread's setting as given (AUTO stays AUTO), to restore it later. */
bt_gemm_backend bt_gemm_backend_setting(void);
/* Resolves AUTO: own kernels on AVX2 and AVX-512, OpenBLAS on the scalar path. */
bt_gemm_backend bt_gemm_get_backend(void);
/* Dispatches to bt_gemm or bt_gemm_blas by the backend above. */
void bt_gemm_train(int ta, int tb, int M, int N, int K, const float *A, int lda,
                   const float *B, int ldb, float *C, int ldc, int accumulate);
/* dst (cols, rows) = src (rows, cols)^T times s (s = 1 copies the floats
 * exactly: nothing in bt flushes denormals), in tiles, on the threads when
 * large. */
void bt_transpose_scaled(float *dst, const float *src, int rows, int cols, float s);

/* ==================================================================== */
/* Linear layer (on bt_gemm_train)                                       */
/* ==================================================================== */

/* out (N,OC) = inp (N,IC) . w^T (w is (OC,IC)) + bias (OC, may be NULL). */
void bt_linear_forward(float *out, const float *inp, const float *w,
                       const float *bias, int N, int IC, int OC);
/* dinp (N,IC) += dout (N,OC) . w;  dw (OC,IC) += dout^T . inp;
 * dbias (OC) += column sums of dout. Any of dinp, dbias may be NULL. */
void bt_linear_backward(float *dinp, float *dw, float *dbias, const float *dout,
                        const float *inp, const float *w, int N, int IC, int OC);
/* The same with dinp overwritten (=) instead of accumulated: the caller
 * need not clear it first (the bits are those of += onto zeros). */
void bt_linear_backward_set(float *dinp, float *dw, float *dbias, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC);

/* ==================================================================== */
/* Elementwise and row ops (kernels/ops_impl.c, compiled once per ISA)   */
/* ==================================================================== */

/* out (N,C) = wte[tok[n]] (wte is (V,C)) * scale. */
void bt_embedding_forward(float *out, const uint16_t *tok, const float *wte,
                          int N, int C, float scale);
/* dwte (V,C) += scatter of dout (N,C) * scale by tok (N). */
void bt_embedding_backward(float *dwte, const float *dout, const uint16_t *tok,
                           int N, int C, float scale);

/* out (N,C) = (inp - mean) * rstd * w + b per row, eps = 1e-5 (biased
 * variance, as PyTorch and Haiku); mean, rstd (N) saved for backward. */
void bt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int N, int C);
/* dinp (N,C) +=, dw (C) +=, db (C) += */
void bt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int N, int C);
/* The same with dinp overwritten: the bits of += onto zeros, without clearing dinp first. */
void bt_layernorm_backward_set(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int N, int C);

/* GELU, tanh approximation (PyTorch approximate='tanh', jax.nn.gelu default):
 * out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). While the GEMM
 * backend is BT_GEMM_BF16 (bt-train --precision bf16), these three take the
 * bf16 path's cheaper exp (relative error < 1e-4; the same bits on every ISA
 * path); otherwise float32 to about an ulp. */
void bt_gelu_forward(float *out, const float *inp, size_t n);
/* dinp (n) += dout * gelu'(inp) */
void bt_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* The same with dinp overwritten: the bits of += onto zeros, without the
 * clearing (so -0 stays +0). */
void bt_gelu_backward_set(float *dinp, const float *inp, const float *dout, size_t n);

/* Rotary tables cos, sin (T, hs/2): angle(t,i) = t * 10000^(-2i/hs).
 * Computed with bt's own double-precision sin/cos/exp: identical everywhere. */
void bt_rope_tables(float *cos_t, float *sin_t, int T, int hs);
/* In place on the q and k parts of qkv (B,T,3C), heads of size hs = C/H,
 * rotate-half pairing (i, i + hs/2) as GPT-NeoX / PyTorch rotate_half:
 *   x'[i]      = x[i] cos - x[i+hs/2] sin
 *   x'[i+hs/2] = x[i+hs/2] cos + x[i] sin
 * Row t of each sequence has position t. v is untouched. */
void bt_rope_forward(float *qkv, const float *cos_t, const float *sin_t,
                     int B, int T, int C, int H);
/* In place on dq, dk parts of dqkv (B,T,3C): the inverse rotation. */
void bt_rope_backward(float *dqkv, const float *cos_t, const float *sin_t,
                      int B, int T, int C, int H);

/* Softmax cross-entropy over V classes. losses (N) = -ln softmax(logits)[target]
 * in nats, from logits (N,V). */
void bt_crossentropy_forward(float *losses, const float *logits,
                             const uint16_t *targets, int N, int V);
/* dlogits (N,V) += (softmax(logits) - onehot(target)) * dloss (scalar, e.g. 1/N). */
void bt_crossentropy_backward(float *dlogits, const float *logits,
                              const uint16_t *targets, int N, int V, float dloss);

/* AdamW (decoupled weight decay, Loshchilov & Hutter), step t >= 1:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * ( m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd p )           */
void bt_adamw_update(float *params, const float *grads, float *m, float *v,
                     size_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int t);

/* Returns sum of g[i]^2 over n, in double, fixed order. */
double bt_sumsq(const float *g, size_t n);
/* x (n) *= s */
void bt_scale(float *x, size_t n, float s);
/* out (n) = a + b; may alias. */
void bt_add(float *out, const float *a, const float *b, size_t n);
/* out (n) = a x + b y: the two products, then their sum (no fused multiply-add,
 * so every path gives the same bits); out may alias x or y. */
void bt_axpby(float *out, float a, const float *x, float b, const float *y, size_t n);
/* sum (C) += column sums of x (N, C), each in double over n = 0..N-1 in
 * order, rounded to float (the linear layers' bias gradients). */
void bt_colsum_add(float *sum, const float *x, int N, int C);

/* ---- naive references (kernels/ops_ref.c), same contracts ---- */
void bt_embedding_forward_naive(float *out, const uint16_t *tok, const float *wte, int N, int C, float scale);
void bt_embedding_backward_naive(float *dwte, const float *dout, const uint16_t *tok, int N, int C, float scale);
void bt_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C);
void bt_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C);
void bt_gelu_forward_naive(float *out, const float *inp, size_t n);
void bt_gelu_backward_naive(float *dinp, const float *inp, const float *dout, size_t n);
void bt_rope_forward_naive(float *qkv, const float *cos_t, const float *sin_t, int B, int T, int C, int H);
void bt_rope_backward_naive(float *dqkv, const float *cos_t, const float *sin_t, int B, int T, int C, int H);
void bt_crossentropy_forward_naive(float *losses, const float *logits, const uint16_t *targets, int N, int V);
void bt_crossentropy_backward_naive(float *dlogits, const float *logits, const uint16_t *targets, int N, int V, float dloss);
void bt_adamw_update_naive(float *params, const float *grads, float *m, float *v, size_t n, float lr,
                           float beta1, float beta2, float eps, float weight_decay, int t);

/* ==================================================================== */
/* Causal multi-head attention (training)                               */
/* ==================================================================== */

/*
 * qkv (B,T,3C) holds q | k | v per row; head h uses columns h*hs..h*hs+hs-1 of
 * each part, hs = C/H (rotary already applied to q and k).
 * out (B,T,C) = softmax(q k^T / sqrt(hs), causal) v, heads concatenated.
 * lse (B,H,T) = per-row log-sum-exp of the scaled scores, saved for backward.
 * Memory: never a (T,T) matrix per (b,h) at once, only query blocks of it.
 * Where this thread's GEMM backend is BT_GEMM_BF16 (bt-train --precision
 * bf16), both directions take their products' inputs in bfloat16, as
 * vdpbf16ps does (kernels/attention_impl.c), with the softmax and every sum
 * in float32; the same bits on any thread count, on avx512 where
 * bt_bf16_available() and from the scalar reference elsewhere.
 */
void bt_attention_forward(float *out, float *lse, const float *qkv,
                          int B, int T, int C, int H);
/* dqkv (B,T,3C) += gradient through attention, given dout (B,T,C) and the
 * forward's qkv, out and lse. */
void bt_attention_backward(float *dqkv, const float *dout, const float *qkv,
                           const float *out, const float *lse,
                           int B, int T, int C, int H);
/* References: materialise each (T,T) score matrix; for tests at small T. */
void bt_attention_forward_naive(float *out, float *lse, const float *qkv,
                                int B, int T, int C, int H);
void bt_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                 const float *out, const float *lse,
                                 int B, int T, int C, int H);

#ifdef __cplusplus
}
#endif
#endif /* BT_KERNELS_H */
