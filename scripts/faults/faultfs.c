/*
 * faultfs: a passthrough FUSE file system whose writes, fsyncs and reads can be made to fail on
 * command, for the disk campaign (scripts/faults/disk_campaign.py). libfuse 3, high-level API.
 *
 *     faultfs BACKING_DIR MOUNTPOINT CONTROL_FILE
 *
 * Runs in the foreground until unmounted (umount MOUNTPOINT, or SIGTERM). Every path under
 * MOUNTPOINT is the same path under BACKING_DIR. CONTROL_FILE is read whenever it changes (polled
 * every 20 ms); its first word is the mode:
 *
 *   ok          pass everything through
 *   eio-write   write, fsync, truncate, fallocate, create, unlink, rename, mkdir, ... fail with EIO
 *   eio-fsync   only fsync / fdatasync fail with EIO; writes go through (the disk took the bytes into
 *               its cache but cannot say they are on the media)
 *   eio-lose    a disk that lies: writes "succeed" but every fsync fails with EIO, and what was
 *               written since the mode began is lost at the next "crash" (below). The bytes reach the
 *               backing file meanwhile (as the kernel's page cache would still show them), their
 *               pre-images are kept; truncate and fallocate fail with EIO
 *   eio-all     eio-write, and read and open fail with EIO too
 *   erofs       the volume went read-only: every change fails with EROFS (also opening for
 *               writing); fsync succeeds (nothing can be dirty), reads work
 *   crash       apply the pre-images kept in eio-lose (newest first), remove files created then,
 *               and cut files back to their sizes before: the media as a power cut would leave it.
 *               Then behaves as eio-all until the next mode (the machine is "off").
 *
 * CONTROL_FILE.stats is rewritten (temporary file and rename) whenever a counter changes:
 *   mode=eio-write failed_write=12 failed_fsync=3 failed_read=0 failed_other=1 erofs=0 lost_writes=0 lost_bytes=0 crashed=0
 *
 * A C program rather than Python (fusepy): it adds a few microseconds per operation to SQLite's
 * one fsync per commit instead of a GIL-bound interpreter's tens, and it needs only Debian's
 * libfuse3-dev, no package from PyPI.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum mode { M_OK, M_EIO_WRITE, M_EIO_FSYNC, M_EIO_LOSE, M_EIO_ALL, M_EROFS, M_CRASHED };
static const char *mode_names[] = {"ok", "eio-write", "eio-fsync", "eio-lose", "eio-all", "erofs", "crash"};

static int backing_fd = -1;
static const char *control_path;
static char stats_path[4200];
static _Atomic int mode = M_OK;
static _Atomic long failed_write, failed_fsync, failed_read, failed_other, erofs_count, lost_writes, lost_bytes;
static _Atomic int crashed;

/* The pre-images of eio-lose: one entry per write, and per file its size before the first. */
struct undo {
    struct undo *next;
    char *rel;
    off_t offset;
    size_t length; /* bytes of pre-image (may be shorter than the write: beyond the old end) */
    char *bytes;
};
struct origin {
    struct origin *next;
    char *rel;
    off_t size;   /* -1: the file did not exist before (created in eio-lose) */
};
static struct undo *undo_head;     /* newest first */
static struct origin *origins;
static pthread_mutex_t undo_lock = PTHREAD_MUTEX_INITIALIZER;

/* An open file: its descriptor on the backing file and its path there (for eio-lose's pre-images). */
struct handle {
    int fd;
    char *rel;
};

static struct handle *H(struct fuse_file_info *fi) { return (struct handle *)(uintptr_t)fi->fh; }
static int FD(struct fuse_file_info *fi) { return H(fi)->fd; }

static void set_handle(struct fuse_file_info *fi, int fd, const char *r) {
    struct handle *h = calloc(1, sizeof *h);
    h->fd = fd;
    h->rel = strdup(r);
    fi->fh = (uint64_t)(uintptr_t)h;
}

static const char *rel(const char *path) {
    while (*path == '/') path++;
    return *path ? path : ".";
}

static int current(void) { return atomic_load(&mode); }

/* Whether a change (not a write to an open file) must fail now, and with what. */
static int change_fault(void) {
    switch (current()) {
    case M_EIO_WRITE: case M_EIO_ALL: case M_CRASHED: atomic_fetch_add(&failed_other, 1); return -EIO;
    case M_EROFS: atomic_fetch_add(&erofs_count, 1); return -EROFS;
    default: return 0;
    }
}

static struct origin *find_origin(const char *r) {
    for (struct origin *o = origins; o; o = o->next)
        if (strcmp(o->rel, r) == 0) return o;
    return NULL;
}

/* Called with undo_lock held: the file's size before eio-lose touched it. */
static void remember_origin(const char *r, off_t size) {
    if (find_origin(r)) return;
    struct origin *o = calloc(1, sizeof *o);
    o->rel = strdup(r);
    o->size = size;
    o->next = origins;
    origins = o;
}

static void crash(void) {
    pthread_mutex_lock(&undo_lock);
    for (struct undo *u = undo_head; u;) {
        int fd = openat(backing_fd, u->rel, O_WRONLY);
        if (fd >= 0) {
            if (u->length > 0 && pwrite(fd, u->bytes, u->length, u->offset) < 0)
                fprintf(stderr, "faultfs: crash: cannot restore %s: %s\n", u->rel, strerror(errno));
            close(fd);
        }
        struct undo *next = u->next;
        free(u->rel);
        free(u->bytes);
        free(u);
        u = next;
    }
    undo_head = NULL;
    for (struct origin *o = origins; o;) {
        if (o->size < 0) {
            unlinkat(backing_fd, o->rel, 0);
        } else {
            int fd = openat(backing_fd, o->rel, O_WRONLY);
            if (fd >= 0) {
                if (ftruncate(fd, o->size) != 0) fprintf(stderr, "faultfs: crash: cannot cut %s: %s\n", o->rel, strerror(errno));
                close(fd);
            }
        }
        struct origin *next = o->next;
        free(o->rel);
        free(o);
        o = next;
    }
    origins = NULL;
    pthread_mutex_unlock(&undo_lock);
    atomic_store(&crashed, 1);
}

/* ---------------------------------------------------------------------------------------------- */

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    (void)conn;
    cfg->use_ino = 1;
    cfg->nullpath_ok = 1;
    cfg->hard_remove = 1;
    /* The kernel asks again for sizes instead of trusting a cache of them. */
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    return NULL;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    int r = fi ? fstat(FD(fi), st) : fstatat(backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_access(const char *path, int mask) {
    if ((mask & W_OK) && current() == M_EROFS) return -EROFS;
    return faccessat(backing_fd, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int ff_readlink(const char *path, char *buf, size_t size) {
    ssize_t n = readlinkat(backing_fd, rel(path), buf, size - 1);
    if (n < 0) return -errno;
    buf[n] = 0;
    return 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
    (void)offset; (void)fi; (void)flags;
    if (current() == M_EIO_ALL || current() == M_CRASHED) { atomic_fetch_add(&failed_read, 1); return -EIO; }
    int fd = openat(backing_fd, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) { int e = errno; close(fd); return -e; }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = e->d_ino;
        st.st_mode = (mode_t)(e->d_type << 12);
        if (filler(buf, e->d_name, &st, 0, 0)) break;
    }
    closedir(d);
    return 0;
}

static int ff_mknod(const char *path, mode_t m, dev_t rdev) {
    int f = change_fault(); if (f) return f;
    return mknodat(backing_fd, rel(path), m, rdev) == 0 ? 0 : -errno;
}

static int ff_mkdir(const char *path, mode_t m) {
    int f = change_fault(); if (f) return f;
    return mkdirat(backing_fd, rel(path), m) == 0 ? 0 : -errno;
}

static int ff_unlink(const char *path) {
    int f = change_fault(); if (f) return f;
    return unlinkat(backing_fd, rel(path), 0) == 0 ? 0 : -errno;
}

static int ff_rmdir(const char *path) {
    int f = change_fault(); if (f) return f;
    return unlinkat(backing_fd, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int ff_symlink(const char *from, const char *to) {
    int f = change_fault(); if (f) return f;
    return symlinkat(from, backing_fd, rel(to)) == 0 ? 0 : -errno;
}

static int ff_rename(const char *from, const char *to, unsigned int flags) {
    int f = change_fault(); if (f) return f;
    if (flags) return -EINVAL;
    return renameat(backing_fd, rel(from), backing_fd, rel(to)) == 0 ? 0 : -errno;
}

static int ff_link(const char *from, const char *to) {
    int f = change_fault(); if (f) return f;
    return linkat(backing_fd, rel(from), backing_fd, rel(to), 0) == 0 ? 0 : -errno;
}

static int ff_chmod(const char *path, mode_t m, struct fuse_file_info *fi) {
    int f = change_fault(); if (f) return f;
    int r = fi ? fchmod(FD(fi), m) : fchmodat(backing_fd, rel(path), m, 0);
    return r == 0 ? 0 : -errno;
}

static int ff_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi) {
    int f = change_fault(); if (f) return f;
    int r = fi ? fchown(FD(fi), uid, gid) : fchownat(backing_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi) {
    int f = change_fault(); if (f) return f;
    if (current() == M_EIO_LOSE) { atomic_fetch_add(&failed_other, 1); return -EIO; }
    int r;
    if (fi) {
        r = ftruncate(FD(fi), size);
    } else {
        int fd = openat(backing_fd, rel(path), O_WRONLY);
        if (fd < 0) return -errno;
        r = ftruncate(fd, size);
        if (r != 0) { int e = errno; close(fd); return -e; }
        close(fd);
    }
    return r == 0 ? 0 : -errno;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
    int f = change_fault(); if (f) return f;
    int r = fi ? futimens(FD(fi), tv) : utimensat(backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int open_fault(int flags) {
    int m = current();
    if (m == M_EIO_ALL || m == M_CRASHED) { atomic_fetch_add(&failed_read, 1); return -EIO; }
    if (m == M_EROFS && ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)))) {
        atomic_fetch_add(&erofs_count, 1);
        return -EROFS;
    }
    return 0;
}

static int ff_create(const char *path, mode_t m, struct fuse_file_info *fi) {
    int f = open_fault(fi->flags | O_CREAT); if (f) return f;
    f = change_fault(); if (f) return f;
    const char *r = rel(path);
    if (current() == M_EIO_LOSE) {
        struct stat st;
        pthread_mutex_lock(&undo_lock);
        remember_origin(r, fstatat(backing_fd, r, &st, 0) == 0 ? st.st_size : -1);
        pthread_mutex_unlock(&undo_lock);
    }
    int fd = openat(backing_fd, r, (fi->flags | O_CREAT) & ~O_NOFOLLOW, m);
    if (fd < 0) return -errno;
    set_handle(fi, fd, r);
    return 0;
}

static int ff_open(const char *path, struct fuse_file_info *fi) {
    int f = open_fault(fi->flags); if (f) return f;
    int fd = openat(backing_fd, rel(path), fi->flags & ~O_NOFOLLOW);
    if (fd < 0) return -errno;
    set_handle(fi, fd, rel(path));
    return 0;
}

static int ff_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    if (current() == M_EIO_ALL || current() == M_CRASHED) { atomic_fetch_add(&failed_read, 1); return -EIO; }
    ssize_t n = pread(FD(fi), buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int ff_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)path;
    int m = current();
    if (m == M_EIO_WRITE || m == M_EIO_ALL || m == M_CRASHED) { atomic_fetch_add(&failed_write, 1); return -EIO; }
    if (m == M_EROFS) { atomic_fetch_add(&erofs_count, 1); return -EROFS; }
    int fd = FD(fi);
    if (m == M_EIO_LOSE) {
        struct stat st;
        if (fstat(fd, &st) == 0) {
            struct undo *u = calloc(1, sizeof *u);
            u->rel = strdup(H(fi)->rel);
            u->offset = offset;
            u->bytes = malloc(size ? size : 1);
            ssize_t got = offset < st.st_size ? pread(fd, u->bytes, size, offset) : 0;
            u->length = got > 0 ? (size_t)got : 0;
            pthread_mutex_lock(&undo_lock);
            remember_origin(u->rel, st.st_size);
            u->next = undo_head;
            undo_head = u;
            pthread_mutex_unlock(&undo_lock);
            atomic_fetch_add(&lost_writes, 1);
            atomic_fetch_add(&lost_bytes, (long)size);
        }
    }
    ssize_t n = pwrite(fd, buf, size, offset);
    return n < 0 ? -errno : (int)n;
}

static int ff_statfs(const char *path, struct statvfs *st) {
    (void)path;
    return fstatvfs(backing_fd, st) == 0 ? 0 : -errno;
}

static int ff_flush(const char *path, struct fuse_file_info *fi) {
    (void)path;
    int fd = dup(FD(fi));
    if (fd < 0) return -errno;
    return close(fd) == 0 ? 0 : -errno;
}

static int ff_release(const char *path, struct fuse_file_info *fi) {
    (void)path;
    struct handle *h = H(fi);
    close(h->fd);
    free(h->rel);
    free(h);
    return 0;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi) {
    (void)path;
    switch (current()) {
    case M_EIO_WRITE: case M_EIO_FSYNC: case M_EIO_LOSE: case M_EIO_ALL: case M_CRASHED:
        atomic_fetch_add(&failed_fsync, 1);
        return -EIO;
    case M_EROFS:
        return 0;
    default:
        break;
    }
    int r = datasync ? fdatasync(FD(fi)) : fsync(FD(fi));
    return r == 0 ? 0 : -errno;
}

static int ff_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi) {
    (void)path; (void)datasync; (void)fi;
    switch (current()) {
    case M_EIO_WRITE: case M_EIO_FSYNC: case M_EIO_LOSE: case M_EIO_ALL: case M_CRASHED:
        atomic_fetch_add(&failed_fsync, 1);
        return -EIO;
    default:
        return 0;
    }
}

static int ff_opendir(const char *path, struct fuse_file_info *fi) {
    (void)path; (void)fi;
    return 0;
}

static int ff_fallocate(const char *path, int m, off_t offset, off_t length, struct fuse_file_info *fi) {
    (void)path;
    int f = change_fault(); if (f) return f;
    if (current() == M_EIO_LOSE) { atomic_fetch_add(&failed_other, 1); return -EIO; }
    return fallocate(FD(fi), m, offset, length) == 0 ? 0 : -errno;
}

static const struct fuse_operations operations = {
    .init = ff_init,
    .getattr = ff_getattr,
    .access = ff_access,
    .readlink = ff_readlink,
    .opendir = ff_opendir,
    .readdir = ff_readdir,
    .mknod = ff_mknod,
    .mkdir = ff_mkdir,
    .symlink = ff_symlink,
    .unlink = ff_unlink,
    .rmdir = ff_rmdir,
    .rename = ff_rename,
    .link = ff_link,
    .chmod = ff_chmod,
    .chown = ff_chown,
    .truncate = ff_truncate,
    .utimens = ff_utimens,
    .open = ff_open,
    .create = ff_create,
    .read = ff_read,
    .write = ff_write,
    .statfs = ff_statfs,
    .flush = ff_flush,
    .release = ff_release,
    .fsync = ff_fsync,
    .fsyncdir = ff_fsyncdir,
    .fallocate = ff_fallocate,
};

/* ---------------------------------------------------------------------------------------------- */

static void write_stats(void) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "mode=%s failed_write=%ld failed_fsync=%ld failed_read=%ld failed_other=%ld erofs=%ld lost_writes=%ld lost_bytes=%ld crashed=%d\n",
            mode_names[current()], atomic_load(&failed_write), atomic_load(&failed_fsync), atomic_load(&failed_read),
            atomic_load(&failed_other), atomic_load(&erofs_count), atomic_load(&lost_writes), atomic_load(&lost_bytes),
            atomic_load(&crashed));
    fclose(f);
    rename(tmp, stats_path);
}

static void *control_loop(void *arg) {
    (void)arg;
    struct timespec last_mtime = {0, 0};
    off_t last_size = -1;
    char last_stats[256] = "";
    for (;;) {
        struct stat st;
        if (stat(control_path, &st) == 0 &&
            (st.st_mtim.tv_sec != last_mtime.tv_sec || st.st_mtim.tv_nsec != last_mtime.tv_nsec || st.st_size != last_size)) {
            last_mtime = st.st_mtim;
            last_size = st.st_size;
            FILE *f = fopen(control_path, "r");
            char word[64] = "";
            if (f) {
                if (fscanf(f, "%63s", word) != 1) word[0] = 0;
                fclose(f);
            }
            int next = -1;
            for (int i = 0; i < (int)(sizeof mode_names / sizeof *mode_names); i++)
                if (strcmp(word, mode_names[i]) == 0) next = i;
            if (next < 0) {
                fprintf(stderr, "faultfs: unknown mode \"%s\" in %s; kept %s\n", word, control_path, mode_names[current()]);
            } else if (next != current()) {
                if (next == M_CRASHED) crash();
                if (current() == M_EIO_LOSE && next != M_CRASHED) {
                    /* The lie ends without a crash: what was written stays (the disk caught up). */
                    pthread_mutex_lock(&undo_lock);
                    for (struct undo *u = undo_head; u;) { struct undo *n = u->next; free(u->rel); free(u->bytes); free(u); u = n; }
                    undo_head = NULL;
                    for (struct origin *o = origins; o;) { struct origin *n = o->next; free(o->rel); free(o); o = n; }
                    origins = NULL;
                    pthread_mutex_unlock(&undo_lock);
                }
                atomic_store(&mode, next);
                fprintf(stderr, "faultfs: mode %s\n", mode_names[next]);
            }
        }
        char now[256];
        snprintf(now, sizeof now, "%d %ld %ld %ld %ld %ld %ld %d", current(), atomic_load(&failed_write), atomic_load(&failed_fsync),
                 atomic_load(&failed_read), atomic_load(&failed_other), atomic_load(&erofs_count), atomic_load(&lost_writes),
                 atomic_load(&crashed));
        if (strcmp(now, last_stats) != 0) {
            strcpy(last_stats, now);
            write_stats();
        }
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

int main(int argc, char *argv[]) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s BACKING_DIR MOUNTPOINT CONTROL_FILE [fuse options]\n", argv[0]);
        return 2;
    }
    backing_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (backing_fd < 0) {
        fprintf(stderr, "faultfs: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    /* libfuse changes the working directory: the control file by its full path. */
    static char control_full[4096];
    if (argv[3][0] == '/') {
        snprintf(control_full, sizeof control_full, "%s", argv[3]);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd)) { perror("faultfs: getcwd"); return 1; }
        snprintf(control_full, sizeof control_full, "%s/%s", cwd, argv[3]);
    }
    control_path = control_full;
    snprintf(stats_path, sizeof stats_path, "%s.stats", control_path);
    umask(0);
    pthread_t thread;
    pthread_create(&thread, NULL, control_loop, NULL);
    pthread_detach(thread);

    char *args[32];
    int n = 0;
    args[n++] = argv[0];
    args[n++] = argv[2];
    args[n++] = "-f";
    args[n++] = "-o";
    args[n++] = "fsname=faultfs,subtype=faultfs";
    for (int i = 4; i < argc && n < 31; i++) args[n++] = argv[i];
    args[n] = NULL;
    return fuse_main(n, args, &operations, NULL);
}
