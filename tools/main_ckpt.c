/*
 * bt-ckpt - inspect and export checkpoints.
 *   bt-ckpt info FILE                 config, parameter count, weights SHA-256, training state
 *   bt-ckpt export [--f16] IN OUT     weights only (no optimizer state), optionally as float16
 * An exported float16 checkpoint stores exactly the values the model computes
 * with: loading widens them to float32 without rounding, and the SHA-256 (the
 * model's identity in compressed files) is taken over those float32 values.
 */
#include <stdio.h>
#include <string.h>

#include "kernels/hash.h"
#include "tools/cli.h"
#include "train/ckpt.h"

static int fail(const char *what, bt_error e) {
  fprintf(stderr, "bt-ckpt: %s: %s: %s\n", what, bt_error_name(e), bt_error_detail());
  return 1;
}

#define USAGE "usage: bt-ckpt info FILE\n       bt-ckpt export [--f16] IN OUT\n"

int main(int argc, char **argv) {
  if (bt_cli_wants_help(argc, argv)) {
    fputs(USAGE "Inspects a checkpoint, or exports its weights (optionally as float16) without the\n"
                "training state.\n", stdout);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "info") == 0) {
    bt_model *m;
    bt_train_state st;
    bt_error e = bt_ckpt_load(argv[2], &m, &st);
    if (e)
      return fail(argv[2], e);
    const bt_config *c = bt_model_config(m);
    uint8_t d[32];
    char hex[65];
    bt_model_weights_sha256(m, d);
    bt_sha256_hex(d, hex);
    printf("%s\n  model       %d layers, dim %d, %d heads, ctx %d\n  params      %zu\n  weights     sha256 %s\n",
           argv[2], c->n_layer, c->d_model, c->n_head, c->ctx, bt_model_num_params(m), hex);
    size_t tn;
    const uint8_t *timg = bt_model_tokenizer(m, &tn);
    if (timg) { /* the image is the .btok file: sha256sum TOK gives the same */
      bt_sha256(timg, tn, d);
      bt_sha256_hex(d, hex);
      printf("  vocabulary  %d BPE tokens; tokenizer %zu bytes, sha256 %s\n", c->vocab, tn, hex);
    } else {
      printf("  vocabulary  256 bytes\n");
    }
    if (st.total_steps) {
      printf("  training    step %lld of %lld, %lld tokens, %.0f s, batch %d x %d, data %s\n"
             "  recipe      %s: %s, optimizer %s, lr %g to %g, wd %g, clip %g\n"
             "  gradient    %s\n"
             "  precision   %s\n"
             "  best val    %.4f bits/byte\n",
             (long long)st.step, (long long)st.total_steps, (long long)st.tokens, st.elapsed_s, st.batch, st.seq,
             st.data_name, st.recipe, st.schedule == BT_SCHED_WSD ? "wsd" : "cosine",
             st.optimizer == BT_OPT_MUON ? "muon" : "adamw", st.lr, st.min_lr, st.weight_decay, st.clip,
             st.grad_sum == BT_GRAD_SEQUENCES
                 ? "one per sequence of the step, summed in a fixed order (any process layout)"
                 : "summed over the whole batch at once (one process)",
             st.precision == BT_PREC_BF16 ? "bf16 inputs to the training GEMMs, fp32 accumulation and weights"
                                          : "fp32",
             st.best_val_bpb);
      if (st.schedule == BT_SCHED_WSD)
        printf("  decay       the last %g of the steps, from step %lld\n", st.decay_frac,
               (long long)bt_train_decay_start(&st));
      if (st.batch_min && st.batch_warmup_steps)
        printf("  batch       warmup from %d to %d sequences over the first %lld steps\n", st.batch_min, st.batch,
               (long long)st.batch_warmup_steps);
      if (st.ckpt_every)
        printf("  cadence     validation every %lld steps (%lld bytes), checkpoint every %lld, "
               "log every %lld\n",
               (long long)st.val_every, (long long)st.val_bytes, (long long)st.ckpt_every,
               (long long)st.log_every);
      else
        printf("  cadence     not recorded (before format 6): a resume takes the defaults\n");
    }
    bt_train_state_clear(&st);
    bt_model_free(m);
    return 0;
  }
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "export") == 0) {
    int f16 = argc == 5 && strcmp(argv[2], "--f16") == 0;
    if (argc == 5 && !f16) {
      fprintf(stderr, "bt-ckpt: unknown option '%s'\n", argv[2]);
      return 1;
    }
    const char *in = argv[argc - 2], *out = argv[argc - 1];
    bt_model *m;
    bt_error e = bt_ckpt_load(in, &m, NULL);
    if (e)
      return fail(in, e);
    if (f16)
      bt_ckpt_round_f16(m);
    e = bt_ckpt_save(out, m, NULL, f16 ? BT_CKPT_F16 : BT_CKPT_F32);
    bt_model_free(m);
    return e ? fail(out, e) : 0;
  }
  fputs(USAGE, stderr);
  return 1;
}
