/*
 * prepare.h - the paper's four evaluation data sets as byte streams
 * (docs/method.md, "How the paper measures"; reference data_loaders.py):
 *
 *   text    any data set or file bt_data_load takes, as it is
 *           (default wiki-valid10m)
 *   image   every JPEG and PNG under a folder (default $BT_DATA/images/imagenet),
 *           in sorted path order; each decoded to grayscale uint8(mean(R,G,B))
 *           (unweighted, truncated), cut into non-overlapping 32-row x 64-column
 *           patches row-major (partial borders dropped), each patch flattened
 *           row-major to 2048 bytes
 *   audio   every FLAC and WAV under a folder (default $BT_DATA/audio/librispeech),
 *           in sorted path order; each sample's high byte + 128 (unsigned 8-bit),
 *           each file cut on its own into 2048-byte chunks, its tail dropped
 *   random  uniform bytes from SplitMix64 with a seed (default 0), 8 bytes per
 *           output word, little-endian
 *
 * "Sorted path order" is byte-wise (strcmp) order of the paths relative to the
 * folder, over the whole tree; names starting with '.' are skipped.
 * Image and audio streams are cached under bt_cache_dir()/prepared, keyed by
 * the folder's listing (paths, sizes, modification times), and re-verified by
 * SHA-256 on use. Nothing is ever written under BT_DATA. Errors come back as
 * bt_error codes with a one-line bt_error_detail(); nothing is printed.
 */
#ifndef BT_PREPARE_H
#define BT_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BT_PATCH_ROWS 32
#define BT_PATCH_COLS 64
/* Bytes per image patch and per audio chunk: the paper's chunk size. */
#define BT_PREP_CHUNK (BT_PATCH_ROWS * BT_PATCH_COLS)
/* Size of the random data set unless asked otherwise (wiki-valid10m's size). */
#define BT_RANDOM_DEFAULT_BYTES ((size_t)10000000)

typedef enum { BT_SET_TEXT = 0, BT_SET_IMAGE, BT_SET_AUDIO, BT_SET_RANDOM, BT_SET__COUNT } bt_set;

/* "text", "image", "audio", "random"; "?" for anything else. */
const char *bt_set_name(bt_set s);
/* Parses one of those names into *s: 0, or -1 if it is none of them. */
int bt_set_parse(const char *name, bt_set *s);

/* The default source of a set, written to out (cap bytes): "wiki-valid10m",
 * bt_data_dir()/images/imagenet, bt_data_dir()/audio/librispeech, or the
 * seed "0". BT_ERR_ARG if it does not fit. */
bt_error bt_set_default_source(bt_set s, char *out, size_t cap);

/* What bt_prepare made. */
typedef struct {
  uint64_t n_files;      /* image, audio: files decoded (or listed, from the cache) */
  uint64_t n_samples;    /* audio: 8-bit samples decoded, before tails were dropped */
  int from_cache;        /* 1: read back from cache_path */
  char cache_path[4096]; /* image, audio: the cache file ("" if there is no cache) */
  uint8_t sha256[32];    /* of the prepared bytes */
} bt_prep_info;

/* Prepares data set s from source (NULL: the default source; for random the
 * seed in decimal) into a new malloc'd buffer *bytes (caller frees) of *n
 * bytes. use_cache = 0 neither reads nor writes the cache. random_bytes is the
 * size of the random set (0: BT_RANDOM_DEFAULT_BYTES); other sets ignore it.
 * info may be NULL. Errors: BT_ERR_ARG, BT_ERR_IO (missing or unreadable
 * source, named in the detail), BT_ERR_FORMAT / BT_ERR_CORRUPT (an image or
 * audio file that does not decode, named), BT_ERR_TOO_SHORT (nothing at all
 * came out: no files, or every one smaller than one patch or chunk),
 * BT_ERR_NOMEM, and whatever bt_data_load returns for text. A cache that
 * cannot be written is not an error. */
bt_error bt_prepare(bt_set s, const char *source, int use_cache, size_t random_bytes,
                    uint8_t **bytes, size_t *n, bt_prep_info *info);

/* ---- the pieces, for tools and tests ---- */

/* Decodes the JPEG or PNG at path (told apart by their signatures) to
 * grayscale: *pix (h,w) row-major, a new malloc'd buffer the caller frees.
 * Colour goes through RGB (palettes expanded, 16-bit samples to their high
 * byte, alpha dropped, no gamma or colour-profile conversion), then
 * uint8((R+G+B)/3). CMYK JPEGs are refused (BT_ERR_FORMAT). */
bt_error bt_image_load_gray(const char *path, uint8_t **pix, int *w, int *h);

/* out (k,32,64) = the k = (h/32)*(w/64) patches of pix (h,w), row-major over
 * the patch grid; out must hold k * 2048 bytes (out may be NULL to count).
 * Returns k. */
size_t bt_image_patches(const uint8_t *pix, int w, int h, uint8_t *out);

/* Decodes the FLAC or WAV (PCM, 8 to 32 bits) at path to unsigned 8-bit
 * samples: *out (n) = high byte of each sample + 128, channels interleaved
 * as stored; a new malloc'd buffer the caller frees (NULL when n is 0).
 * *rate gets the sample rate (may be NULL); nothing is resampled. FLAC's MD5
 * of the decoded audio is checked when the file has one (BT_ERR_CHECKSUM). */
bt_error bt_audio_load_u8(const char *path, uint8_t **out, size_t *n, uint32_t *rate);

/* out[0..n) = the SplitMix64 stream of seed, each 64-bit word little-endian
 * (the last word cut short when n is not a multiple of 8). */
void bt_random_fill(uint64_t seed, uint8_t *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
