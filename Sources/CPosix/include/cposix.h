#ifndef CPOSIX_H
#define CPOSIX_H
#include <stddef.h>
#include <sys/socket.h>

// Glibc's Swift module hides these behind _GNU_SOURCE / _XOPEN_SOURCE.
int cposix_openpt(int flags);
int cposix_grantpt(int fd);
int cposix_unlockpt(int fd);
int cposix_ptsname_r(int fd, char *buffer, size_t length);
int cposix_accept4(int fd, int flags);

#endif
