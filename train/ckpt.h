/*
 * ckpt.h - HDF5 checkpoints that h5py and PyTorch users can read.
 *
 * Layout of a checkpoint file:
 *   [0, 512)   user block (HDF5 skips it): "BTCKPT1\n", the file size and a
 *              SHA-256 of bytes [512, end), so a truncated or damaged file is
 *              rejected before libhdf5 parses a byte of it.
 *   /          attributes: format = "bt-checkpoint", format_version, bt_version,
 *              n_layer, d_model, n_head, ctx, vocab, num_params,
 *              weights_sha256 (hex, of the float32 parameter block), dtype.
 *   /params/<name>   one dataset per tensor (model.h names and shapes),
 *                    float32, or float16 when saved with BT_CKPT_F16.
 *   /tokenizer        (V > 256 only; format 5) the model's tokenizer: its
 *                     .btok file image (data/bpe.h) as a 1-D uint8 dataset.
 *   /train            (optional) full training state: attributes (step,
 *                     tokens, schedule, RNG, data cursor, ...), and
 *                     /train/adam_m/<name>, /train/adam_v/<name>, /train/log.
 * Format versions: 1; 2, which adds the attributes schedule, decay_frac,
 * recipe, optimizer and muon_momentum to /train; 3, which adds grad_sum; 4,
 * which adds precision ("fp32" or "bf16": the training GEMMs' inputs); 5,
 * which allows vocab > 256 with /tokenizer; 6, which adds the run's cadence
 * (val_every, val_bytes, ckpt_every, log_every) to /train, so that a resume
 * goes on validating and saving as the run began; 7, which adds the batch
 * warmup (batch_min, batch_warmup_steps) to /train.
 * All are read; states before version 4 trained in fp32; version 1 states are cosine AdamW runs of the recipe "v1",
 * and states before version 3 sum each step's gradient over the whole batch.
 * Writes are atomic: a temp file in the same folder, fsync, rename.
 */
#ifndef BT_CKPT_H
#define BT_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"
#include "train/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Columns of the training log, one row per logged step. */
enum {
  BT_LOG_STEP, BT_LOG_TOKENS, BT_LOG_ELAPSED, BT_LOG_LR, BT_LOG_TRAIN_BPB,
  BT_LOG_VAL_BPB, BT_LOG_TOK_PER_S, BT_LOG_COLS
};
#define BT_LOG_COLUMN_NAMES "step,tokens,elapsed_s,lr,train_bpb,val_bpb,tokens_per_s"

/* Everything bt-train needs to continue a run exactly. */
typedef struct {
  int64_t step;          /* optimizer steps done */
  int64_t total_steps;   /* planned length of the run */
  int64_t warmup_steps;
  int64_t tokens;        /* training tokens seen */
  int32_t batch, seq;    /* batch size, sequence length */
  int32_t threads;       /* thread count of the run (bit-exact resume needs it) */
  int32_t ctx_min;       /* context-length warmup: shortest sequence (0: off) */
  int64_t ctx_warmup_steps; /* steps over which the sequence grows to seq */
  int32_t batch_min;     /* batch-size warmup: smallest batch (0: off; format 7) */
  int64_t batch_warmup_steps; /* steps over which the batch grows to batch */
  double lr, min_lr, weight_decay, beta1, beta2, eps, clip;
  int32_t schedule;      /* BT_SCHED_COSINE or BT_SCHED_WSD */
  double decay_frac;     /* WSD: the last fraction of the steps decays linearly to min_lr */
  char recipe[32];       /* bt-train --recipe the run started from ("v1", "v2", ...) */
  int32_t optimizer;     /* BT_OPT_ADAMW or BT_OPT_MUON (Muon on the layers' matrices) */
  double muon_momentum;
  int32_t grad_sum;      /* BT_GRAD_BATCH or BT_GRAD_SEQUENCES (train/gradsum.h) */
  int32_t precision;     /* BT_PREC_FP32 or BT_PREC_BF16 (kernels.h's bt_gemm_bf16) */
  uint64_t seed;
  uint64_t rng[2];       /* the trainer's sampler state */
  double val_split;      /* fraction of DATA's tail held out (0: none) */
  double elapsed_s;      /* wall time spent so far over all runs */
  double best_val_bpb;
  /* bt-train's cadence flags (format 6): steps between validations (0: only
   * at the end), bytes validated, steps between checkpoints and between log
   * records. ckpt_every 0: not recorded (states before format 6, or made
   * without bt-train), and then all four are 0. */
  int64_t val_every, val_bytes, ckpt_every, log_every;
  char data_name[256];   /* what DATA was given as */
  uint64_t data_size;
  uint8_t data_sha256[32];
  double *log;           /* log_rows x BT_LOG_COLS, malloc'd, owned by the struct */
  size_t log_rows;
} bt_train_state;

enum { BT_SCHED_COSINE = 0, BT_SCHED_WSD = 1 };
enum { BT_OPT_ADAMW = 0, BT_OPT_MUON = 1 };
enum { BT_PREC_FP32 = 0, BT_PREC_BF16 = 1 };
/* How a step's gradient is summed: over the whole batch in one pass (runs
 * begun before format 3), or as train/gradsum.h's fixed-order sum of one
 * gradient per micro-batch of seq tokens, the same for any number of
 * processes (train/dist.h). */
enum { BT_GRAD_BATCH = 0, BT_GRAD_SEQUENCES = 1 };

/* The step at which a WSD run of st's length starts its decay (total_steps
 * for cosine, which has no stable phase to extend). */
int64_t bt_train_decay_start(const bt_train_state *st);

/* 1 if part >= 1 divides whole into a power of two (whole / part = 1, 2,
 * 4, ...): the shape of the context and batch warmups' first stage. */
int bt_pow2_divisor(int64_t part, int64_t whole);

/* The batch at a step: with a batch warmup, batch_min doubling in equal
 * stages of the warmup steps up to batch; else batch. */
int32_t bt_train_batch_at(const bt_train_state *st, int64_t step);
/* Tokens the steps [0, steps) see (seq tokens a sequence), and the fewest
 * steps from 0 that see at least `tokens`: both count the batch warmup. */
int64_t bt_train_tokens_before(const bt_train_state *st, int64_t steps);
int64_t bt_train_steps_for(const bt_train_state *st, int64_t tokens);

/* Bounds on a training state, for bt-train's flags and for checkpoints,
 * whose values are hostile until checked: nothing derived from them can
 * overflow (steps x tokens a step < 2^63; AdamW's step counter is an int). */
#define BT_TRAIN_MAX_STEPS ((int64_t)1 << 30)
#define BT_TRAIN_MAX_BATCH 65536
#define BT_TRAIN_MAX_BATCH_TOKENS ((int64_t)1 << 22)
#define BT_TRAIN_MAX_VAL_BYTES ((int64_t)1 << 40)

/* BT_OK if every field of st is in range for a model of config cfg
 * (steps, batch x sequence, context warmup, optimizer settings, val_split);
 * else BT_ERR_CORRUPT naming the field. bt_ckpt_load calls it. */
bt_error bt_train_state_check(const bt_train_state *st, const bt_config *cfg);

/* Frees st->log; the struct itself is the caller's. NULL is fine. */
void bt_train_state_clear(bt_train_state *st);

enum { BT_CKPT_F32 = 0, BT_CKPT_F16 = 1 };

/* Writes m's parameters (and st with the AdamW moments, if st != NULL) to
 * path atomically. With BT_CKPT_F16 parameters are stored as float16 and must
 * already be representable (see bt_ckpt_round_f16). */
bt_error bt_ckpt_save(const char *path, bt_model *m, const bt_train_state *st, int dtype);

/* Reads the config only (cheap; verifies the file checksum first). */
bt_error bt_ckpt_read_config(const char *path, bt_config *cfg);
/* The config and the weights' SHA-256 (as stored; bt_ckpt_load checks it
 * against the weights), without loading the weights. */
bt_error bt_ckpt_read_info(const char *path, bt_config *cfg, uint8_t weights_sha256[32]);

/* Loads a model (and the training state into st when st != NULL and the file
 * has one; st->step == 0 otherwise). *out is owned by the caller. The file is
 * hostile until checked, checksum or not (anyone can reseal one): every
 * attribute's range, every dataset's link, shape, type and storage (in the
 * file, uncompressed, no external files) are checked before anything is
 * allocated from them, and the weights against their SHA-256. A bad file
 * gives BT_ERR_CORRUPT or BT_ERR_FORMAT, never a crash or a huge allocation.
 * A FIFO or device is refused without blocking. */
bt_error bt_ckpt_load(const char *path, bt_model **out, bt_train_state *st);

/* bt_ckpt_load, bt_ckpt_read_info and bt_ckpt_read_config parse the file
 * with bt's own HDF5 reader (train/h5r.h), in memory and bounds-checked;
 * libhdf5, which is not memory-safe on hostile files, only writes. */

/* SHA-256 of the parameter block as float32 little-endian: the model's identity. */
void bt_model_weights_sha256(bt_model *m, uint8_t out[32]);

/* Rounds every parameter to the nearest float16 value (ties to even). */
void bt_ckpt_round_f16(bt_model *m);

#ifdef __cplusplus
}
#endif
#endif
