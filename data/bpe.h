/*
 * bpe.h - byte-level byte-pair encoding (BPE): the tokenizers of the
 * tokenization study (issue 21; the paper's Table 2).
 *
 * A vocabulary of V tokens is the 256 bytes and V - 256 merges: token
 * 256 + i is the concatenation of the two earlier tokens of merge i. Text is
 * first cut into pieces that no merge crosses (bt_bpe_pieces: a word with
 * its leading space, a run of digits, of punctuation, of white space; at
 * most BT_BPE_MAX_PIECE bytes), and each piece is encoded by applying the
 * merges in order. Decoding concatenates the tokens' bytes. Nothing is
 * normalised, so every byte sequence, text or not, decodes to itself.
 *
 * The merges of a smaller vocabulary are the first merges of a larger one
 * trained on the same text, so one training run gives every size.
 *
 * File (.btok, version 1; little-endian), read as hostile input:
 *   "BTBPE\r\n\x1a"  magic (8 bytes)
 *   u32 version (1), u32 pieces scheme (1), u32 vocab V (256..65536)
 *   (V - 256) x (u32 left, u32 right): merge i joins tokens < 256 + i
 *   32 bytes: SHA-256 of everything before
 */
#ifndef BT_BPE_H
#define BT_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BT_BPE_MAX_VOCAB 65536
#define BT_BPE_MAX_PIECE 64 /* bytes: so no token is longer */

typedef struct bt_bpe bt_bpe; /* opaque; immutable once made */

/* Learns V - 256 merges from text (n bytes): each merge joins the pair of
 * adjacent tokens that occurs most often inside pieces (ties: the smaller
 * left token, then right), counted over the whole text. Stops early if no
 * pair occurs twice. progress (may be NULL) is called every 256 merges.
 * BT_ERR_ARG, BT_ERR_NOMEM. */
typedef void (*bt_bpe_progress_fn)(void *user, int merges_done, int merges_wanted);
bt_error bt_bpe_train(bt_bpe **out, const uint8_t *text, size_t n, int vocab, bt_bpe_progress_fn fn,
                      void *user);
/* The first V tokens of bpe (V <= its vocabulary): a new tokenizer. */
bt_error bt_bpe_prefix(bt_bpe **out, const bt_bpe *bpe, int vocab);
/* NULL is fine. */
void bt_bpe_free(bt_bpe *bpe);

/* Its vocabulary size V. */
int bt_bpe_vocab(const bt_bpe *bpe);
/* Token id's bytes (owned by bpe) and their count; 0 for an id >= V. */
size_t bt_bpe_token(const bt_bpe *bpe, uint32_t id, const uint8_t **bytes);

/* tok (at most n entries) = the tokens of in (n bytes); returns how many. */
size_t bt_bpe_encode(const bt_bpe *bpe, const uint8_t *in, size_t n, uint32_t *tok);
/* The same as the 16-bit ids a model reads (every V fits: V <= 65536). */
size_t bt_bpe_encode16(const bt_bpe *bpe, const uint8_t *in, size_t n, uint16_t *tok);
/* out (cap bytes) = the bytes of tok[0..ntok); *n = how many.
 * BT_ERR_CORRUPT for an id >= V, BT_ERR_LIMIT if cap is too small. */
bt_error bt_bpe_decode(const bt_bpe *bpe, const uint32_t *tok, size_t ntok, uint8_t *out, size_t cap,
                       size_t *n);

/* The end of the piece that starts at in[0] (n >= 1): a length in
 * 1..min(n, BT_BPE_MAX_PIECE). Scheme 1, for every vocabulary. */
size_t bt_bpe_piece(const uint8_t *in, size_t n);

/* The file image of bpe: *buf (malloc'd, the caller frees) of *len bytes. */
bt_error bt_bpe_serialize(const bt_bpe *bpe, uint8_t **buf, size_t *len);
/* A tokenizer from a file image; BT_ERR_FORMAT (not one, or a later version),
 * BT_ERR_CORRUPT, BT_ERR_CHECKSUM, BT_ERR_NOMEM. */
bt_error bt_bpe_parse(bt_bpe **out, const uint8_t *buf, size_t len);
/* The same through a file (written atomically). bt_bpe_load reads path, or
 * path.btok where path does not exist (bt-tokenize train -o NAME writes
 * NAME.btok). */
bt_error bt_bpe_save(const bt_bpe *bpe, const char *path);
bt_error bt_bpe_load(bt_bpe **out, const char *path);

#ifdef __cplusplus
}
#endif

#endif
