/* The CHECK macro the C tests share: counts passes and failures (safe from several threads; the
 * condition is evaluated outside the lock, so checks never serialize the calls they test) and
 * prints each failure with the calling thread's last library error. */
#ifndef SMOLVLM_TEST_CHECK_H
#define SMOLVLM_TEST_CHECK_H
#include "smolvlm.h"
#include <pthread.h>
#include <stdio.h>

static int passed, failed;
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        int check_ok_ = (cond) ? 1 : 0;                                    \
        pthread_mutex_lock(&check_lock);                                   \
        if (check_ok_) {                                                   \
            passed++;                                                      \
        } else {                                                           \
            failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, " [last error: %s]\n", smolvlm_last_error());  \
        }                                                                  \
        pthread_mutex_unlock(&check_lock);                                 \
    } while (0)

#endif
