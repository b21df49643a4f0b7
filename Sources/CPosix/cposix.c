#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/socket.h>
#include "cposix.h"

int cposix_openpt(int flags) { return posix_openpt(flags); }
int cposix_grantpt(int fd) { return grantpt(fd); }
int cposix_unlockpt(int fd) { return unlockpt(fd); }
int cposix_ptsname_r(int fd, char *buffer, size_t length) { return ptsname_r(fd, buffer, length); }
int cposix_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }
