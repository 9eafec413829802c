/*
 * tool_xcheck_dump - writes a tiny model and its forward/backward results for
 * tests/test_torch_xcheck.py to recompute in PyTorch.
 *
 * usage: tool_xcheck_dump OUTDIR L C H T B SEED
 * writes OUTDIR/model.h5 (checkpoint), seq.bin (uint8, B*T), logits.bin
 * (float32, B*T*256), loss.txt, grads.bin (float32, the whole gradient block in
 * model.h layout order), and adam_losses.txt: the losses of 5 AdamW steps.
 */
#include <stdio.h>
#include <stdlib.h>

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
  if (argc != 8) {
    fprintf(stderr, "usage: %s OUTDIR L C H T B SEED\n", argv[0]);
    return 1;
  }
  const char *dir = argv[1];
  bt_config cfg = {atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5])};
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
  uint8_t *seq = malloc((size_t)B * T);
  for (int i = 0; i < B * T; i++) { /* text-like bytes with structure */
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    seq[i] = (uint8_t)((s >> 33) % 7 == 0 ? ' ' : 'a' + (s >> 40) % 26);
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/model.h5", dir);
  float loss = 0;
  int rc = 0;
  if ((e = bt_ckpt_save(path, m, NULL, BT_CKPT_F32)) || (e = bt_model_forward(m, seq, B, T, &loss)) ||
      (e = bt_model_backward(m))) {
    fprintf(stderr, "tool_xcheck_dump: %s: %s\n", bt_error_name(e), bt_error_detail());
    return 1;
  }
  rc |= write_bin(dir, "seq.bin", seq, (size_t)B * T);
  rc |= write_bin(dir, "logits.bin", bt_model_logits(m), (size_t)B * T * BT_VOCAB * sizeof(float));
  rc |= write_bin(dir, "grads.bin", bt_model_grads(m), bt_model_num_params(m) * sizeof(float));
  snprintf(path, sizeof path, "%s/loss.txt", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "%.9g\n", loss);
  fclose(f);
  snprintf(path, sizeof path, "%s/adam_losses.txt", dir);
  f = fopen(path, "w");
  for (int step = 1; step <= 5; step++) {
    if (step > 1 && ((e = bt_model_forward(m, seq, B, T, &loss)) || (e = bt_model_backward(m)))) {
      fprintf(stderr, "tool_xcheck_dump: %s: %s\n", bt_error_name(e), bt_error_detail());
      return 1;
    }
    if (step > 1)
      fprintf(f, "%.9g\n", loss);
    bt_model_adamw(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
  }
  bt_model_forward(m, seq, B, T, &loss);
  fprintf(f, "%.9g\n", loss);
  fclose(f);
  free(seq);
  bt_model_free(m);
  return rc ? 1 : 0;
}
