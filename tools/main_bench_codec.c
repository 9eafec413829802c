/*
 * bt-bench-codec - bt-compress / bt-decompress throughput and MFU per model,
 * both directions measured side by side in one process. A benchmark, not a
 * test (tools/bench-codec runs it on the validation text for the presets).
 *
 *   bt-bench-codec [-T threads] [-n bytes] [-c chunk] [-r reps] [--json] TEXT CKPT...
 *
 * For each checkpoint, at the given chunk size (default 2048) and in stream
 * mode (--chunk 0): compresses the first n bytes of TEXT, decompresses the
 * result, checks the round trip, and reports bytes/s of each (the codec's own
 * wall time: the model is loaded once, outside the timing; best of reps).
 *
 * MFU = bytes/s x FLOPs per byte / the fp32 FMA peak measured here
 * (bt_peak_gflops, same ISA and thread count, best of 3). FLOPs per coded
 * byte = 2 params + attention, attention = sum over layers of 2 x 2 x d x
 * (keys the byte's position attends to: p + 1 at window position p), i.e.
 * one multiply-add per key and dim for q.k and one for the p.v sum, averaged
 * over the coded bytes. Work that is not a coded byte's own is not counted:
 * in stream mode each window after the first re-runs its P = ctx/2 context
 * bytes, so the executed FLOPs per byte are higher than the count.
 *
 * "bytes a pass": a lone stream's decoded bytes per model pass
 * (bt_codec_stats), the multi-row decoder's acceptance: up to BT_SPEC_K
 * rows a pass, the next byte's and the draft's guesses'; 1 where a pass is
 * one row (every preset's default, docs/decoding.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "coder/codec.h"
#include "kernels/kernels.h"

#define USAGE                                                                                  \
  "usage: bt-bench-codec [-T threads] [-n bytes] [-c chunk] [-r reps] [--kv auto|int8|bf16] "  \
  "[--json] TEXT CKPT...\n"                                                                    \
  "  --kv: the K/V cache of compression (bt-compress --kv; --kv8 = --kv int8)\n"
static void usage(void) {
  fputs(USAGE, stderr);
  exit(1);
}

/* Sum over the coded bytes of a chunk of len bytes of (keys attended), with
 * the window schedule of coder/codec.c: a chunk longer than the context W is
 * cut into windows; window 0 codes positions 0..W-1, every later one codes
 * up to S = W - W/2 bytes at positions W/2.. after W/2 bytes of context. */
static double keys_sum(uint64_t len, int W) {
  if (len <= (uint64_t)W)
    return (double)len * (double)(len + 1) / 2.0;
  const uint64_t P = (uint64_t)(W / 2), S = (uint64_t)W - P;
  double k = (double)W * (double)(W + 1) / 2.0;
  for (uint64_t start = (uint64_t)W; start < len; start += S) {
    const uint64_t c = len - start < S ? len - start : S; /* positions P..P+c-1 */
    k += (double)c * (double)P + (double)c * (double)(c + 1) / 2.0;
  }
  return k;
}

typedef struct {
  double comp_bps, decomp_bps, flops_per_byte, kv_bytes_per_byte, ratio;
  double bytes_per_pass; /* a lone stream's decoded bytes per model pass (the draft's acceptance); 0: none */
  int kv8; /* the K/V cache it ran with */
} result;

static int run(bt_codec *c, const uint8_t *text, size_t n, uint32_t chunk, int adapt, int reps,
               result *r) {
  const bt_config *cfg = bt_codec_config(c);
  uint8_t *buf = malloc(bt_compress_bound(n, chunk));
  if (!buf)
    return 1;
  double tc = 1e30, td = 1e30;
  size_t len = 0;
  uint64_t passes = 0, pass_bytes = 0;
  for (int i = 0; i < reps; i++) {
    bt_codec_stats st;
    bt_error e = bt_compress(c, text, n, chunk, buf, &len, &st, NULL, NULL);
    if (e) {
      fprintf(stderr, "bt-bench-codec: compress: %s: %s\n", bt_error_name(e), bt_error_detail());
      free(buf);
      return 1;
    }
    tc = st.seconds < tc ? st.seconds : tc;
    uint8_t *out = NULL;
    size_t m = 0;
    e = bt_decompress(c, buf, len, &out, &m, &st, NULL, NULL);
    if (e || m != n || memcmp(out, text, n) != 0) {
      fprintf(stderr, "bt-bench-codec: decompress: %s\n", e ? bt_error_detail() : "round trip differs");
      free(out);
      free(buf);
      return 1;
    }
    free(out);
    td = st.seconds < td ? st.seconds : td;
    passes += st.spec_passes;
    pass_bytes += st.spec_bytes;
  }
  r->bytes_per_pass = passes ? (double)pass_bytes / (double)passes : 0;
  free(buf);
  /* coded bytes and their keys, chunk by chunk */
  const uint64_t clen = chunk ? chunk : (uint64_t)n;
  double keys = 0;
  for (uint64_t off = 0; off < n; off += clen)
    keys += keys_sum(n - off < clen ? n - off : clen, cfg->ctx);
  const double params = (double)bt_codec_num_params(c);
  r->flops_per_byte = 2.0 * params + 2.0 * 2.0 * cfg->d_model * cfg->n_layer * keys / (double)n;
  /* Decoding reads every key's K and V of every layer once per byte: 2 bytes
   * a dim as bfloat16; with the int8 cache, 1 byte a dim and 1 a head for
   * the exponent. */
  r->kv8 = bt_codec_kv8_for(c, adapt);
  const double per_key = r->kv8 ? cfg->d_model + cfg->n_head : 2.0 * cfg->d_model;
  r->kv_bytes_per_byte = 2.0 * per_key * cfg->n_layer * keys / (double)n;
  r->comp_bps = (double)n / tc;
  r->decomp_bps = (double)n / td;
  r->ratio = (double)len / (double)n;
  return 0;
}

int main(int argc, char **argv) {
  bt_cli_init("bt-bench-codec", "[options] (see --help)");
  bt_cli_apply_isa();
  int threads = 2, reps = 1, json = 0, kv8 = BT_KV_AUTO;
  long nbytes = 131072;
  uint32_t chunk = 2048;
  if (bt_cli_wants_help(argc, argv)) {
    fputs(USAGE, stdout);
    return 0;
  }
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--json")) {
      json = 1;
      continue;
    }
    if (!strcmp(argv[i], "--kv8")) { /* --kv int8, as builds before --kv auto spelt it */
      kv8 = 1;
      continue;
    }
    if (!strcmp(argv[i], "--kv") && i + 1 < argc) {
      const char *v = argv[++i];
      kv8 = !strcmp(v, "auto") ? BT_KV_AUTO : !strcmp(v, "int8") ? 1 : !strcmp(v, "bf16") ? 0 : 2;
      if (kv8 == 2)
        usage();
      continue;
    }
    if (i + 1 >= argc)
      usage();
    long v = (long)bt_cli_count(argv[i], argv[i + 1], 1, 1ull << 40);
    if (!strcmp(argv[i], "-T") && v > 0) threads = (int)v;
    else if (!strcmp(argv[i], "-n") && v > 0) nbytes = v;
    else if (!strcmp(argv[i], "-c") && v > 0) chunk = (uint32_t)v;
    else if (!strcmp(argv[i], "-r") && v > 0) reps = (int)v;
    else usage();
    i++;
  }
  if (argc - i < 2)
    usage();
  FILE *f = fopen(argv[i], "rb");
  uint8_t *text = malloc((size_t)nbytes);
  size_t n = f && text ? fread(text, 1, (size_t)nbytes, f) : 0;
  if (f)
    fclose(f);
  if (n == 0) {
    fprintf(stderr, "bt-bench-codec: cannot read %s\n", argv[i]);
    return 1;
  }
  bt_set_threads(threads);
  double peak = 0;
  for (int k = 0; k < 3; k++) { /* a busy moment only lowers a trial */
    double p = bt_peak_gflops(bt_isa_get(), threads);
    peak = p > peak ? p : peak;
  }
  const double bw = bt_read_gbs(threads, (size_t)256 << 20); /* best of its 3 passes */
  if (!json)
    printf("bt codec, isa %s, %d threads, %zu bytes of %s, measured fp32 FMA peak %.1f GFLOP/s,\n"
           "measured read bandwidth %.1f GB/s (256 MB)\n"
           "| model | params | mode | compress B/s | MFU | decompress B/s | MFU | decomp/comp "
           "| MFLOP/byte | decomp K/V reads | bytes a pass | size |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
           bt_isa_name(bt_isa_get()), threads, n, argv[i], peak, bw);
  for (int k = i + 1; k < argc; k++) {
    bt_codec *c = NULL;
    bt_error e = bt_codec_open(&c, argv[k]);
    if (e) {
      fprintf(stderr, "bt-bench-codec: %s: %s: %s\n", argv[k], bt_error_name(e), bt_error_detail());
      return 1;
    }
    bt_codec_set_kv8(c, kv8);
    const bt_config *cfg = bt_codec_config(c);
    /* The paper's chunks, one stream, then adaptive coding (--adapt's
     * schedule) as one stream and as one segment per thread. Adaptive rows
     * also train: their MFU counts the forward pass only. */
    const uint32_t seg = (uint32_t)((n + (size_t)threads - 1) / (size_t)threads);
    const struct { uint32_t chunk; int adapt; } modes[4] = {{chunk, 0}, {0, 0}, {0, 1}, {seg, 1}};
    for (int mi = 0; mi < 4; mi++) {
      result r;
      bt_adapt ad;
      bt_adapt_default(&ad);
      if (ad.window > (uint32_t)cfg->ctx)
        ad.window = (uint32_t)cfg->ctx;
      if (bt_codec_set_adapt(c, modes[mi].adapt ? &ad : NULL) != BT_OK ||
          run(c, text, n, modes[mi].chunk, modes[mi].adapt, reps, &r)) {
        bt_codec_free(c);
        return 1;
      }
      const double mc = r.comp_bps * r.flops_per_byte * 1e-9 / peak;
      const double md = r.decomp_bps * r.flops_per_byte * 1e-9 / peak;
      char mode[64];
      if (modes[mi].adapt)
        snprintf(mode, sizeof mode, modes[mi].chunk ? "adapt, segment %u" : "adapt, stream", modes[mi].chunk);
      else
        snprintf(mode, sizeof mode, modes[mi].chunk ? "chunk %u" : "stream", modes[mi].chunk);
      strcat(mode, r.kv8 ? ", int8" : ", bf16");
      if (json)
        printf("{\"ckpt\":\"%s\",\"d_model\":%d,\"params\":%zu,\"chunk\":%u,\"adapt\":%d,\"bytes\":%zu,"
               "\"threads\":%d,\"compress_bps\":%.1f,\"decompress_bps\":%.1f,"
               "\"flops_per_byte\":%.0f,\"peak_gflops\":%.1f,\"mfu_compress\":%.4f,"
               "\"mfu_decompress\":%.4f,\"kv_bytes_per_byte\":%.0f,\"read_gbs\":%.2f,"
               "\"size_ratio\":%.5f,\"kv8\":%d,\"bytes_per_pass\":%.3f}\n",
               argv[k], cfg->d_model, bt_codec_num_params(c), modes[mi].chunk, modes[mi].adapt, n, threads, r.comp_bps,
               r.decomp_bps, r.flops_per_byte, peak, mc, md, r.kv_bytes_per_byte, bw, r.ratio, r.kv8,
               r.bytes_per_pass);
      else {
        char bpp[16] = "-"; /* chunks decode in lockstep groups, one row a stream a step */
        if (r.bytes_per_pass > 0)
          snprintf(bpp, sizeof bpp, "%.2f", r.bytes_per_pass);
        printf("| %s | %zu | %s | %.0f | %.1f%% | %.0f | %.1f%% | %.2f | %.2f | %.1f GB/s | %s | %.2f%% |\n",
               argv[k], bt_codec_num_params(c), mode, r.comp_bps, 100 * mc, r.decomp_bps,
               100 * md, r.decomp_bps / r.comp_bps, r.flops_per_byte * 1e-6,
               r.decomp_bps * r.kv_bytes_per_byte * 1e-9, bpp, 100 * r.ratio);
      }
      fflush(stdout);
    }
    bt_codec_free(c);
  }
  free(text);
  return 0;
}
