/*
 * isa_impl.h - private to kernels/: helpers for sources compiled once per ISA.
 *
 * CMake compiles each kernels/<name>_impl.c three times, with -DBT_ISA_SUFFIX set
 * to _scalar, _avx2 or _avx512 and the matching -m flags. Every function such a
 * file exports is named BT_ISA_FN(name), i.e. name_scalar, name_avx2, ...; the
 * plain-named public function in kernels/<name>.c picks one by bt_isa_get().
 * Inside, `#if defined(__AVX512F__)` / `__AVX2__` select hand-written intrinsics.
 */
#ifndef BT_ISA_IMPL_H
#define BT_ISA_IMPL_H

#define BT_CAT2_(a, b) a##b
#define BT_CAT_(a, b) BT_CAT2_(a, b)
#define BT_ISA_FN(name) BT_CAT_(name, BT_ISA_SUFFIX)

/* Declares name_scalar, name_avx2 and name_avx512 with one prototype. */
#define BT_DECLARE_ISA3(ret, name, params) \
  ret name##_scalar params;                \
  ret name##_avx2 params;                  \
  ret name##_avx512 params;

/* Picks the variant for the active ISA: BT_PICK_ISA(fn)(args...). */
#define BT_PICK_ISA(name)                                        \
  (bt_isa_get() == BT_ISA_AVX512 ? name##_avx512                 \
   : bt_isa_get() == BT_ISA_AVX2 ? name##_avx2 : name##_scalar)

#endif
