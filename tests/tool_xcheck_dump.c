/*
 * tool_xcheck_dump - writes a tiny model and its forward/backward results for
 * tests/test_torch_xcheck.py to recompute in PyTorch.
 *
 * usage: tool_xcheck_dump OUTDIR L C H T B SEED [V]
 * writes OUTDIR/model.h5 (checkpoint), seq.bin (uint16 tokens, B*T), logits.bin
 * (float32, B*T*V), loss.txt, grads.bin (float32, the whole gradient block in
 * model.h layout order), and adam_losses.txt: the losses of 5 AdamW steps.
 */
#include <stdio.h>
#include <stdlib.h>

#include "data/bpe.h"
#include "kernels/kernels.h"
#include "train/ckpt.h"
#include "train/model.h"

static int write_bin(const char *dir, const char *name, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "tool_xcheck_dump: cannot write %s\n", path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 9) {
    fprintf(stderr, "usage: %s OUTDIR L C H T B SEED [V]\n", argv[0]);
    return 1;
  }
  const char *dir = argv[1];
  bt_config cfg = {atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                   argc == 9 ? atoi(argv[8]) : BT_VOCAB};
  int B = atoi(argv[6]), T = cfg.ctx;
  uint64_t seed = strtoull(argv[7], NULL, 10);
  bt_model *m;
  bt_error e = bt_model_create(&m, &cfg);
  if (e) {
    fprintf(stderr, "tool_xcheck_dump: %s: %s\n", bt_error_name(e), bt_error_detail());
    return 1;
  }
  bt_model_init(m, seed);
  /* Perturb LayerNorm and biases away from 1/0 so their gradients are tested
   * at generic values. */
  const bt_tensor_info *t = bt_model_tensors(m);
  float *p = bt_model_params(m);
  uint64_t s = seed * 2654435761u + 7;
  for (int i = 0; i < BT_NUM_TENSORS; i++) {
    if (t[i].ndim == 3 || i == BT_T_EMBED || i == BT_T_OUT_W)
      continue;
    for (size_t j = 0; j < t[i].size; j++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      p[t[i].offset + j] += 0.1f * (float)((double)(s >> 11) * 0x1p-53 - 0.5);
    }
  }
  const int V = bt_model_config(m)->vocab;
  uint16_t *seq = malloc((size_t)B * T * sizeof *seq);
  for (int i = 0; i < B * T; i++) { /* text-like bytes with structure; tokens past them for V > 256 */
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    seq[i] = (uint16_t)((s >> 33) % 7 == 0 ? ' ' : 'a' + (s >> 40) % 26);
    if (V > BT_VOCAB && (s >> 20) % 2)
      seq[i] = (uint16_t)(BT_VOCAB + (s >> 44) % (uint64_t)(V - BT_VOCAB));
  }
  if (V > BT_VOCAB) { /* a checkpoint of V > 256 holds its tokenizer: one learnt from text */
    uint8_t *text = malloc(1 << 20);
    for (int i = 0; i < 1 << 20; i++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      text[i] = (uint8_t)((s >> 33) % 5 == 0 ? ' ' : 'a' + (s >> 40) % 8);
    }
    bt_bpe *bpe;
    uint8_t *img;
    size_t n;
    if ((e = bt_bpe_train(&bpe, text, 1 << 20, V, NULL, NULL)) || (e = bt_bpe_serialize(bpe, &img, &n)) ||
        (e = bt_bpe_vocab(bpe) == V ? bt_model_set_tokenizer(m, img, n)
                                     : bt_fail(BT_ERR_ARG, "the text gives %d tokens", bt_bpe_vocab(bpe)))) {
      fprintf(stderr, "tool_xcheck_dump: tokenizer: %s\n", bt_error_detail());
      return 1;
    }
    bt_bpe_free(bpe);
    free(img);
    free(text);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/model.h5", dir);
  float loss = 0;
  int rc = 0;
  if ((e = bt_ckpt_save(path, m, NULL, BT_CKPT_F32)) || (e = bt_model_forward_tokens(m, seq, B, T, &loss)) ||
      (e = bt_model_backward(m))) {
    fprintf(stderr, "tool_xcheck_dump: %s: %s\n", bt_error_name(e), bt_error_detail());
    return 1;
  }
  rc |= write_bin(dir, "seq.bin", seq, (size_t)B * T * sizeof *seq); /* little-endian, as bt's machines */
  rc |= write_bin(dir, "logits.bin", bt_model_logits(m), (size_t)B * T * V * sizeof(float));
  rc |= write_bin(dir, "grads.bin", bt_model_grads(m), bt_model_num_params(m) * sizeof(float));
  snprintf(path, sizeof path, "%s/loss.txt", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "%.9g\n", loss);
  fclose(f);
  snprintf(path, sizeof path, "%s/adam_losses.txt", dir);
  f = fopen(path, "w");
  for (int step = 1; step <= 5; step++) {
    if (step > 1 && ((e = bt_model_forward_tokens(m, seq, B, T, &loss)) || (e = bt_model_backward(m)))) {
      fprintf(stderr, "tool_xcheck_dump: %s: %s\n", bt_error_name(e), bt_error_detail());
      return 1;
    }
    if (step > 1)
      fprintf(f, "%.9g\n", loss);
    bt_model_adamw(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
  }
  bt_model_forward_tokens(m, seq, B, T, &loss);
  fprintf(f, "%.9g\n", loss);
  fclose(f);
  free(seq);
  bt_model_free(m);
  return rc ? 1 : 0;
}
