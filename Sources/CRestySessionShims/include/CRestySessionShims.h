#ifndef C_RESTY_SESSION_SHIMS_H
#define C_RESTY_SESSION_SHIMS_H

#include <stddef.h>

/// Fills `buffer` with `count` bytes from the operating system's CSPRNG: getrandom(2) on Linux
/// (retried on EINTR and short reads), arc4random_buf on Darwin. Returns 0, or -1 with errno
/// set when the kernel has no getrandom.
int c_resty_session_random(void *buffer, size_t count);

#endif
