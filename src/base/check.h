// Invariant checks.
//
// SHARDMQ_CHECK holds in production builds: use it for invariants whose
// violation means memory is about to be corrupted. SHARDMQ_DCHECK compiles
// away in release builds: use it in hot loops. Neither is for input a client
// sends; bad input is a value (a reason code), never a failed check.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SHARDMQ_CHECK(cond)                                                         \
  do {                                                                              \
    if (__builtin_expect(!(cond), 0)) {                                             \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#ifdef NDEBUG
#define SHARDMQ_DCHECK(cond) \
  do {                       \
    (void)sizeof(cond);      \
  } while (0)
#else
#define SHARDMQ_DCHECK(cond) SHARDMQ_CHECK(cond)
#endif
