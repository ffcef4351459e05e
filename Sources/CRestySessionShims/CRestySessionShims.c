#include "CRestySessionShims.h"

#include <errno.h>

#if defined(__APPLE__)
#include <stdlib.h>

int c_resty_session_random(void *buffer, size_t count) {
    arc4random_buf(buffer, count);
    return 0;
}
#else
#include <sys/random.h>

int c_resty_session_random(void *buffer, size_t count) {
    unsigned char *bytes = buffer;
    size_t filled = 0;
    while (filled < count) {
        ssize_t result = getrandom(bytes + filled, count - filled, 0);
        if (result < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        filled += (size_t)result;
    }
    return 0;
}
#endif
