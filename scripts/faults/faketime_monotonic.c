/*
 * faketime_monotonic.so: preloaded in front of libfaketime by the clock campaign
 * (scripts/faults/clock_campaign.py), so that timers on the monotonic clocks stay monotonic.
 *
 * libfaketime 0.9.10 (Debian 12) intercepts timerfd_settime() and moves every absolute deadline by
 * the fake offset (and rate), whatever clock the timer is on, even with
 * FAKETIME_DONT_FAKE_MONOTONIC=1. libdispatch, under Swift concurrency's Task.sleep, arms absolute
 * timerfds on CLOCK_MONOTONIC and CLOCK_BOOTTIME: after a -1 h step every sleep of the daemon
 * would last an hour more, after +1 h end at once, and at a rate of x1.5 end at nonsense times. A
 * real NTP step or slew moves CLOCK_REALTIME only; timers on the monotonic clocks do not notice.
 * This shim remembers each timerfd's clock (timerfd_create) and arms monotonic ones with the
 * system call itself; CLOCK_REALTIME timers still go through libfaketime, which moves them with
 * the faked wall clock as the kernel moves them with a stepped one.
 *
 *     cc -shared -fPIC -O2 -o faketime_monotonic.so faketime_monotonic.c -ldl
 *     LD_PRELOAD=/path/faketime_monotonic.so:/path/libfaketimeMT.so.1 program
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
static _Atomic signed char clock_of[MAX_FDS]; /* 0: unknown or realtime; 1: a monotonic clock */

int timerfd_create(int clockid, int flags) {
    int fd = (int)syscall(SYS_timerfd_create, clockid, flags);
    if (fd >= 0 && fd < MAX_FDS) {
        int monotonic = clockid == CLOCK_MONOTONIC || clockid == CLOCK_BOOTTIME
#ifdef CLOCK_BOOTTIME_ALARM
                        || clockid == CLOCK_BOOTTIME_ALARM
#endif
            ;
        atomic_store(&clock_of[fd], (signed char)monotonic);
    }
    return fd;
}

int timerfd_settime(int fd, int flags, const struct itimerspec *value, struct itimerspec *old) {
    if (fd >= 0 && fd < MAX_FDS && atomic_load(&clock_of[fd]) == 1)
        return (int)syscall(SYS_timerfd_settime, fd, flags, value, old);
    static int (*next)(int, int, const struct itimerspec *, struct itimerspec *);
    if (!next) next = (int (*)(int, int, const struct itimerspec *, struct itimerspec *))dlsym(RTLD_NEXT, "timerfd_settime");
    if (!next) return (int)syscall(SYS_timerfd_settime, fd, flags, value, old);
    return next(fd, flags, value, old);
}

int timerfd_gettime(int fd, struct itimerspec *value) {
    if (fd >= 0 && fd < MAX_FDS && atomic_load(&clock_of[fd]) == 1)
        return (int)syscall(SYS_timerfd_gettime, fd, value);
    static int (*next)(int, struct itimerspec *);
    if (!next) next = (int (*)(int, struct itimerspec *))dlsym(RTLD_NEXT, "timerfd_gettime");
    if (!next) return (int)syscall(SYS_timerfd_gettime, fd, value);
    return next(fd, value);
}
