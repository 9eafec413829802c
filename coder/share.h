/*
 * share.h - compression and decompression spread over mpirun's ranks
 * (train/dist.h): the exchange functions of bt_codec_set_share and
 * bt_codec_set_decode_share. Every rank makes the same bt_compress and
 * bt_decompress calls; each codes its run of the chunks, rank 0 receives the
 * others' and writes, and every call returns rank 0's status on every rank,
 * so all stop together. Used by bt-compress, bt-decompress and bt-eval.
 */
#ifndef BT_SHARE_H
#define BT_SHARE_H

#include "coder/codec.h"

bt_error bt_share_exchange(void *user, bt_chunk_result *r, uint64_t n, bt_error status);
bt_error bt_share_dexchange(void *user, int verdict, uint8_t *res, const bt_span *sp, uint64_t n,
                            bt_error status);

#endif
