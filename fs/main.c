/*
 * verconfd STORE MOUNTPOINT [options]: options, opening the store, the
 * import of what MOUNTPOINT already holds, mounting and the session loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "verconfd.h"

struct fs fs = { .lock = PTHREAD_MUTEX_INITIALIZER };
extern const struct fuse_lowlevel_ops verconf_ops;

struct config {
	char *store;
	char *validate;
	char *sync;
	char *max_file_size;
	int showmeta;
	int noimport;
	int help;
	int version;
};

enum { KEY_HELP, KEY_VERSION };

#define OPT(t, p, v) { t, offsetof(struct config, p), v }
static const struct fuse_opt option_spec[] = {
	OPT("validate=%s", validate, 0),
	OPT("sync=%s", sync, 0),
	OPT("max_file_size=%s", max_file_size, 0),
	OPT("showmeta", showmeta, 1),
	OPT("noimport", noimport, 1),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: verconfd [options] STORE MOUNTPOINT\n"
		"\n"
		"Mount MOUNTPOINT so that every committed write becomes an immutable\n"
		"version in the SQLite file STORE (created, mode 0600, if missing).\n"
		"\n"
		"verconfd options (-o name[=value],...):\n"
		"    -o validate=strict|warn|off  JSON gate for *.json (default strict)\n"
		"    -o sync=full|normal          SQLite synchronous mode (default full)\n"
		"    -o max_file_size=SIZE        largest file, e.g. 16M (default), 1G, 4096\n"
		"    -o showmeta                  list .control and .versions in readdir\n"
		"    -o noimport                  do not import MOUNTPOINT's files into a new store\n"
		"\n");
}

/* The first non-option is STORE, the second the mount point (left for
 * fuse_parse_cmdline), as mount.fuse3 passes them from /etc/fstab. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct config *c = data;
	(void)outargs;
	if (key == KEY_HELP) {
		c->help = 1;
		return 0;
	}
	if (key == KEY_VERSION) {
		c->version = 1;
		return 0;
	}
	if (key == FUSE_OPT_KEY_NONOPT && !c->store) {
		c->store = strdup(arg);
		return 0;
	}
	return 1;
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	unsigned long long mult = 1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1ULL << 10; end++; break;
	case 'm': case 'M': mult = 1ULL << 20; end++; break;
	case 'g': case 'G': mult = 1ULL << 30; end++; break;
	default: return -1;
	}
	/* SQLite's blob limit is 1 GB by default. */
	if (*end || v == 0 || v > (1ULL << 30) / mult)
		return -1;
	*out = (size_t)(v * mult);
	return 0;
}

static int apply_config(const struct config *c)
{
	fs.validate = VALIDATE_STRICT;
	if (c->validate && !strcmp(c->validate, "warn"))
		fs.validate = VALIDATE_WARN;
	else if (c->validate && !strcmp(c->validate, "off"))
		fs.validate = VALIDATE_OFF;
	else if (c->validate && strcmp(c->validate, "strict")) {
		fprintf(stderr, "verconfd: validate must be strict, warn or off, not '%s'\n",
			c->validate);
		return -1;
	}
	if (c->sync && strcmp(c->sync, "full") && strcmp(c->sync, "normal")) {
		fprintf(stderr, "verconfd: sync must be full or normal, not '%s'\n", c->sync);
		return -1;
	}
	fs.sync_normal = c->sync && !strcmp(c->sync, "normal");
	fs.max_file_size = 16u << 20;
	if (c->max_file_size && parse_size(c->max_file_size, &fs.max_file_size)) {
		fprintf(stderr, "verconfd: max_file_size '%s' is not a size from 1 to 1G\n",
			c->max_file_size);
		return -1;
	}
	fs.showmeta = c->showmeta;
	fs.noimport = c->noimport;
	return 0;
}

/* The store's absolute path; the file itself may not exist yet. */
static char *absolute_store_path(const char *store)
{
	char *copy1 = strdup(store), *copy2 = strdup(store), *out = NULL;
	char dir[PATH_MAX];
	if (copy1 && copy2 && realpath(dirname(copy1), dir))
		if (asprintf(&out, "%s/%s", strcmp(dir, "/") ? dir : "", basename(copy2)) < 0)
			out = NULL;
	free(copy1);
	free(copy2);
	return out;
}

/* ---- import ------------------------------------------------------------ */

static int import_entry(int dirfd, const char *name, const char *path);

static int import_commit(const char *path, const struct stat *st, enum vc_kind kind,
			 const void *data, size_t len)
{
	vc_actor a;
	actor_self(&a);
	vc_commit_req c = { .path = path, .kind = kind, .op = VC_OP_IMPORT, .data = data,
			    .len = len, .mode = st->st_mode & 07777, .uid = st->st_uid,
			    .gid = st->st_gid, .status = VC_ACCEPTED, .actor = &a };
	int rc = vc_commit(fs.store, &c, NULL, NULL);
	if (rc)
		fprintf(stderr, "verconfd: import of %s failed: %s\n", path, vc_errmsg(fs.store));
	return rc;
}

static int import_file(int fd, const char *path, const struct stat *st)
{
	if ((size_t)st->st_size > fs.max_file_size) {
		fprintf(stderr, "verconfd: cannot import %s: %lld bytes is over max_file_size\n",
			path, (long long)st->st_size);
		return -EFBIG;
	}
	char *buf = malloc(st->st_size ? (size_t)st->st_size : 1);
	size_t got = 0;
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st->st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st->st_size - got);
		if (n <= 0) {
			free(buf);
			fprintf(stderr, "verconfd: cannot read %s: %s\n", path,
				n ? strerror(errno) : "file shrank");
			return -EIO;
		}
		got += (size_t)n;
	}
	char reason[VC_REASON_MAX];
	/* What is on disk is live already: keep it live, but say so. */
	if (gate_check(path, buf, got, reason, sizeof(reason)))
		fprintf(stderr, "verconfd: warning: imported %s as it is: %s\n", path, reason);
	int rc = import_commit(path, st, VC_FILE, buf, got);
	free(buf);
	return rc;
}

static int import_dir(int fd, const char *path)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int rc = 0;
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *child = path_join(path, de->d_name);
		rc = child ? import_entry(dirfd(d), de->d_name, child) : -ENOMEM;
		free(child);
	}
	closedir(d);
	return rc;
}

static int import_entry(int dirfd, const char *name, const char *path)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target));
		if (n < 0)
			return -errno;
		return import_commit(path, &st, VC_SYMLINK, target, (size_t)n);
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "verconfd: not importing %s: not a file, directory or symlink\n", path);
		return 0;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		int rc = import_file(fd, path, &st);
		close(fd);
		return rc;
	}
	int rc = import_commit(path, &st, VC_DIR, NULL, 0);
	return rc ? (close(fd), rc) : import_dir(fd, path);
}

int import_tree(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return import_dir(fd, "");
}

/* ---- start-up ------------------------------------------------------------ */

static bool store_is_new(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 ? errno == ENOENT : st.st_size == 0;
}

static void remove_store(const char *path)
{
	char side[PATH_MAX + 8];
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* The store file as opened: changes are refused once it is gone or
 * replaced (its directory removed, say), since SQLite would go on writing
 * into an unlinked file and lose everything at unmount. */
static dev_t store_dev;
static ino_t store_ino;

int store_check(void)
{
	static bool logged;
	struct stat st;
	/* A sync of the store's log failed (see vc_sync): the disk may have
	 * lost writes, so nothing more is accepted that could not be kept. */
	if (fs.sync_failed)
		return -EIO;
	if (stat(fs.store_path, &st) == 0 && st.st_dev == store_dev && st.st_ino == store_ino)
		return 0;
	snprintf(fs.last_error, sizeof(fs.last_error),
		 "store %s was removed or replaced: changes refused (EIO); remount", fs.store_path);
	if (!logged)
		log_msg(LOG_ERR, "%s", fs.last_error);
	logged = true;
	return -EIO;
}

static int open_store(bool *created)
{
	char err[512];
	vc_actor a;
	actor_self(&a);
	*created = store_is_new(fs.store_path);
	/* sync=full: changes are made durable after fs.lock is released
	 * (fs_unlock), so no request waits for the disk behind another's
	 * commit. */
	int flags = VC_OPEN_CREATE | VC_OPEN_WRITER |
		    (fs.sync_normal ? VC_OPEN_SYNC_NORMAL : VC_OPEN_SYNC_DEFERRED);
	int rc = vc_open(fs.store_path, flags, &a, &fs.store, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "verconfd: %s\n", err);
		return rc;
	}
	struct stat st;
	if (stat(fs.store_path, &st) == 0) {
		store_dev = st.st_dev;
		store_ino = st.st_ino;
	}
	if (*created && !fs.noimport) {
		rc = import_tree(fs.mountpoint);
		if (!rc)
			rc = vc_sync(fs.store, vc_change_mark(fs.store));
		if (rc) {
			/* A half-imported new store would hide the rest for good:
			 * remove it, so the next start imports everything again. */
			fprintf(stderr, "verconfd: import of %s failed (%s); store removed\n",
				fs.mountpoint, strerror(-rc));
			vc_close(fs.store);
			fs.store = NULL;
			remove_store(fs.store_path);
		}
	}
	return rc;
}

/* fsname shows the store in /proc/mounts; commas would split the option. */
static int add_mount_options(struct fuse_args *args)
{
	char *opt = malloc(strlen(fs.store_path) * 2 + 16), *p;
	if (!opt)
		return -1;
	p = opt + sprintf(opt, "-ofsname=");
	for (const char *s = fs.store_path; *s; s++) {
		if (*s == ',' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p = '\0';
	int rc = fuse_opt_add_arg(args, opt) || fuse_opt_add_arg(args, "-osubtype=verconfd") ||
		 fuse_opt_add_arg(args, "-odefault_permissions") ||
		 fuse_opt_add_arg(args, "-onosuid") || fuse_opt_add_arg(args, "-onodev");
	free(opt);
	return rc;
}

/*
 * Stopping (SIGTERM, SIGINT, SIGHUP).  libfuse's own handlers end the
 * session loop at once; an invalidation then waiting in the kernel for a
 * directory lock would never finish, and the daemon could not exit (see
 * notify_quiesce).  Ours only write to a pipe; the stopper thread quiets
 * the notifier while the loop still answers requests, then ends the loop
 * and wakes it with a signal (its read(2) or sem_wait(3) returns EINTR).
 * As with libfuse's, a signal already ignored (a background job's SIGINT)
 * stays ignored.
 */
static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
static int stop_pipe[2] = { -1, -1 };
static pthread_t loop_thread;

static void on_stop_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;
	/* A full pipe means a stop is already on its way. */
	ssize_t n = write(stop_pipe[1], &c, 1);
	(void)n;
	errno = saved;
}

static int set_stop_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal }, old;
	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(*stop_signals); i++) {
		if (sigaction(stop_signals[i], NULL, &old) != 0)
			return -1;
		if (old.sa_handler == SIG_DFL && sigaction(stop_signals[i], &sa, NULL) != 0)
			return -1;
	}
	return signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0;
}

static void *stopper(void *arg)
{
	(void)arg;
	struct pollfd pfd = { .fd = stop_pipe[0], .events = POLLIN };
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	if (!notify_quiesce(2000))
		log_msg(LOG_WARNING, "stopping while an invalidation still waits for a directory lock");
	fuse_session_exit(fs.se);
	pthread_kill(loop_thread, SIGTERM);
	return NULL;
}

/* From the thread that runs the session loop, after fuse_daemonize. */
static int start_stopper(void)
{
	pthread_t t;
	loop_thread = pthread_self();
	int rc = pthread_create(&t, NULL, stopper, NULL);
	if (rc)
		return -rc;
	pthread_detach(t);
	return 0;
}

static int serve(struct fuse_args *args, struct fuse_cmdline_opts *opts)
{
	int ret = 1;
	fs.se = fuse_session_new(args, &verconf_ops, sizeof(verconf_ops), NULL);
	if (!fs.se)
		return 1;
	if (set_stop_handlers() != 0)
		goto out_destroy;
	if (fuse_session_mount(fs.se, opts->mountpoint) != 0)
		goto out_signals;
	log_msg(LOG_INFO, "serving %s on %s", fs.store_path, fs.mountpoint);
	fuse_daemonize(opts->foreground);
	/* Threads do not survive the fork of fuse_daemonize: start it after. */
	if (notify_start() != 0 || start_stopper() != 0) {
		log_msg(LOG_ERR, "cannot start the notifier and stopper threads");
		goto out_unmount;
	}
	if (opts->singlethread) {
		ret = fuse_session_loop(fs.se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, opts->clone_fd);
		/* libfuse's parser leaves UINT_MAX for "not given". */
		if (opts->max_threads != UINT_MAX)
			fuse_loop_cfg_set_max_threads(lc, opts->max_threads);
		if (opts->max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lc, opts->max_idle_threads);
		ret = fuse_session_loop_mt(fs.se, lc);
		fuse_loop_cfg_destroy(lc);
	}
out_unmount:
	fuse_session_unmount(fs.se);
	log_msg(LOG_INFO, "unmounted %s", fs.mountpoint);
	/* libfuse reports the signal that ended the loop; SIGTERM, SIGINT and
	 * SIGHUP are the ordinary ways to stop: a clean exit. */
	if (ret > 0)
		ret = 0;
out_signals:
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(*stop_signals); i++) {
		struct sigaction old;
		if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler == on_stop_signal)
			signal(stop_signals[i], SIG_DFL);
	}
out_destroy:
	fuse_session_destroy(fs.se);
	return ret ? 1 : 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct config conf = { 0 };
	bool created;
	int ret = 2;

	/* Modes arrive already masked by the caller's umask. */
	umask(0);
	if (fuse_opt_parse(&args, &conf, option_spec, opt_proc) != 0)
		return 2;
	if (conf.help || conf.version) {
		if (conf.help) {
			usage(stdout);
			fuse_cmdline_help();
			fuse_lowlevel_help();
		} else {
			printf("verconfd %s (libfuse %s)\n", VERCONF_VERSION, fuse_pkgversion());
		}
		ret = 0;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &opts) != 0 || !conf.store || !opts.mountpoint) {
		usage(stderr);
		goto out;
	}
	if (apply_config(&conf) != 0)
		goto out;
	char mnt[PATH_MAX];
	fs.store_path = absolute_store_path(conf.store);
	if (!fs.store_path || !realpath(opts.mountpoint, mnt)) {
		fprintf(stderr, "verconfd: %s: %s\n", fs.store_path ? opts.mountpoint : conf.store,
			strerror(errno));
		goto out;
	}
	fs.mountpoint = strdup(mnt);
	fs.foreground = opts.foreground;
	fs.owner_uid = getuid();
	fs.owner_gid = getgid();
	if (!opts.foreground)
		openlog("verconfd", LOG_PID, LOG_DAEMON);
	ret = 1;
	if (open_store(&created) != 0 || add_mount_options(&args) != 0)
		goto out;
	nodes_init();
	meta_init();
	ret = serve(&args, &opts);
	vc_close(fs.store);
out:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	/* fuse_opt_parse strdup()s every %s option. */
	free(conf.store);
	free(conf.validate);
	free(conf.sync);
	free(conf.max_file_size);
	free(fs.store_path);
	free(fs.mountpoint);
	return ret;
}
