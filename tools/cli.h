/*
 * cli.h - what every bt program shares on its command line: its name at the
 * head of each message (as gzip and xz print theirs), the usage-error exit,
 * and the one number syntax (sizes, durations, reals). The clock is
 * kernels/clock.h.
 */
#ifndef BT_CLI_H
#define BT_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/clock.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the program name messages start with and the synopsis bt_usage_error
 * prints after "usage: NAME " (it may hold more lines). Both must outlive
 * the program (string literals). */
void bt_cli_init(const char *prog, const char *synopsis);

/* "NAME: message\n" on stderr. */
void bt_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* bt_msg, then exit status 1. */
void bt_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* The message, the synopsis and a pointer to --help on stderr; exit status 1. */
void bt_usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Applies $BT_ISA (scalar, avx2, avx512) for the whole program: a value that
 * is not one of those is a usage error, one this CPU lacks exits 1 with a
 * message. Every program that runs kernels calls it once. */
void bt_cli_apply_isa(void);

/* 1 if an argument before any "--" is -h or --help. */
int bt_cli_wants_help(int argc, char **argv);

/* A count or byte size, the one number syntax of every bt program: digits,
 * optionally with a decimal part or an exponent (1.5M, 1e6), and an optional
 * K, M, G, T (powers of 1000: also k, KB, MB, ...) or KiB, MiB, GiB, TiB
 * suffix, as zstd reads sizes. The value must be a whole number. 0 on
 * success, -1 on garbage, a fraction, a sign or overflow. */
int bt_parse_size(const char *s, uint64_t *out);

/* bt_parse_size within [lo, hi], or a usage error naming the option. */
uint64_t bt_cli_count(const char *opt, const char *s, uint64_t lo, uint64_t hi);

/* A duration: a number with an optional s, m, h or d ("90", "20m", "1.5h").
 * 0 and seconds in *out, or -1 on garbage. */
int bt_parse_duration(const char *s, double *out);

/* A finite real number in [lo, hi] (strtod's syntax, nothing after it). 0 on
 * success, -1 otherwise (*out untouched). */
int bt_parse_real(const char *s, double lo, double hi, double *out);

/* The whole of path ("-": stdin) in one malloc'd buffer (free it), its
 * length in *n. Exits 1 with a message if it cannot be opened or read, or
 * does not fit in memory. */
uint8_t *bt_cli_read_all(const char *path, size_t *n);


#ifdef __cplusplus
}
#endif

#endif
