/*
 * bench: does an application read its configuration slower on verconf, and
 * what does history cost?  Run through tools/bench.sh, which mounts a fresh
 * store and passes three directories:
 *
 *   bench --vc MNT --tmpfs DIR --disk DIR --work DIR --verconfd BIN --verconf BIN
 *         [--quick] [--rounds N] [--ms N] [--only cases|scale|growth] [--case NAME]
 *         [--json FILE]
 *
 * cases:  syscall loops, one op timed at a time (CLOCK_MONOTONIC) into a
 *         log-scale histogram (2% buckets).  Each case runs in rounds; in
 *         every round each target gets one time-bounded batch, the order
 *         rotating, so verconf and native share the same noise.  ops/s is
 *         ops over the summed batch time.
 * scale:  stores of 10k, 100k and 1M versions over 10,000
 *         paths, written through the store API (synchronous=NORMAL): mount
 *         time, daemon RSS, `verconf log PATH -n 20`, `verconf tree --at SEQ`.
 * growth: 10,000 commits of a 20 KiB JSON config changing one value each:
 *         store size next to the same history in git after `git gc`.
 *
 * Prints one markdown table per part; --json writes the same figures.
 * Asserts nothing about timing; exits non-zero only when an operation fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* ---- options and helpers ---------------------------------------------- */

static struct {
	const char *vc, *tmpfs, *disk, *work, *verconfd, *verconf, *json, *only, *only_case;
	bool quick;
	int rounds;
	double batch_s;
} opt = { .rounds = 5, .batch_s = 0.25 };

static FILE *jf; /* --json output */
static bool have_git;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}

static void write_file(const char *path, const void *buf, size_t len, bool sync)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (write(fd, buf, len) != (ssize_t)len)
		die("write %s: %s", path, strerror(errno));
	if (sync && fsync(fd) < 0)
		die("fsync %s: %s", path, strerror(errno));
	if (close(fd) < 0)
		die("close %s: %s", path, strerror(errno));
}

/* A valid JSON text of exactly len bytes (len >= 40) whose "rev" is rev. */
static void json_config(char *buf, size_t len, long rev)
{
	int n = snprintf(buf, len, "{\"rev\":%012ld,\"data\":\"", rev);
	memset(buf + n, 'x', len - n);
	memcpy(buf + len - 3, "\"}\n", 3);
}

static long json_rev(const char *buf, size_t len)
{
	if (len < 20 || memcmp(buf, "{\"rev\":", 7))
		return -1;
	return strtol(buf + 7, NULL, 10);
}

/* Run argv, stdout/stderr to /dev/null (or out_fd), wait; exit status or -1. */
static int run(char *const argv[], int in_fd, int out_fd)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(in_fd >= 0 ? in_fd : null, 0);
		dup2(out_fd >= 0 ? out_fd : null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- latency histograms ------------------------------------------------ */

#define HBUCKETS 1200 /* log2(ns) * 32: 2.2% wide, up to 2^37 ns */
struct hist {
	uint64_t count[HBUCKETS];
	uint64_t ops;
	int64_t time_ns; /* summed batch time */
};

static void hist_add(struct hist *h, int64_t ns)
{
	int b = ns <= 1 ? 0 : (int)(log2((double)ns) * 32);
	if (b >= HBUCKETS)
		b = HBUCKETS - 1;
	h->count[b]++;
	h->ops++;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	for (int i = 0; i < HBUCKETS; i++)
		into->count[i] += h->count[i];
	into->ops += h->ops;
	into->time_ns += h->time_ns;
}

/* Percentile in microseconds (bucket midpoint). */
static double hist_pct(const struct hist *h, double p)
{
	if (!h->ops)
		return 0;
	uint64_t want = (uint64_t)ceil(p * h->ops), seen = 0;
	if (want < 1)
		want = 1;
	for (int i = 0; i < HBUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want)
			return pow(2.0, (i + 0.5) / 32.0) / 1000.0;
	}
	return 0;
}

static double hist_rate(const struct hist *h)
{
	return h->time_ns ? h->ops * 1e9 / h->time_ns : 0;
}

/* ---- targets and cases ------------------------------------------------- */

enum { VC, TMPFS, DISK, NTARGETS };
static const char *target_name[NTARGETS] = { "verconf", "tmpfs", "disk" };

struct target {
	int kind;
	const char *dir;
	long i;       /* ops done so far, across batches (content changes by it) */
	int fd;       /* pread: the open file; replace/rollback: the directory */
	char *p1, *p2, *p3;
	vc_id id_a, id_b; /* rollback on verconf: the two versions */
	long rev_a, rev_b;
	int nentries;
};

struct casedef {
	const char *name;
	const char *what;
	int ref;        /* the target the ratio is against */
	double goal;    /* ratio verconf/ref to reach */
	const char *native_what; /* what the native columns measure, if not the same op */
	void (*setup)(struct target *t);
	void (*op)(struct target *t);        /* verconf and native, unless op_native */
	void (*op_native)(struct target *t);
	bool no_tmpfs;
};

static char buf4k[4096], rbuf[1 << 18];

/* open+read+close of an unchanged 4 KiB config */
static void read_setup(struct target *t)
{
	t->p1 = xasprintf("%s/app.json", t->dir);
	json_config(buf4k, sizeof buf4k, 1);
	write_file(t->p1, buf4k, sizeof buf4k, true);
}

static size_t read_all(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	size_t got = 0;
	ssize_t n;
	while ((n = read(fd, rbuf + got, sizeof rbuf - got)) > 0)
		got += n;
	if (n < 0)
		die("read %s: %s", path, strerror(errno));
	close(fd);
	return got;
}

static void read_op(struct target *t)
{
	if (read_all(t->p1) != 4096)
		die("%s: short read", t->p1);
}

/* pread of a whole 256 KiB file kept open */
static void pread_setup(struct target *t)
{
	t->p1 = xasprintf("%s/big.bin", t->dir);
	static char big[1 << 18];
	for (size_t k = 0; k < sizeof big; k++)
		big[k] = 'a' + k % 23;
	write_file(t->p1, big, sizeof big, true);
	if ((t->fd = open(t->p1, O_RDONLY)) < 0)
		die("open %s: %s", t->p1, strerror(errno));
}

static void pread_op(struct target *t)
{
	if (pread(t->fd, rbuf, sizeof rbuf, 0) != (ssize_t)sizeof rbuf)
		die("pread %s: %s", t->p1, strerror(errno));
}

static void stat_op(struct target *t)
{
	struct stat st;
	if (stat(t->p1, &st) < 0 || st.st_size != 4096)
		die("stat %s: %s", t->p1, strerror(errno));
}

/* readdir of a 1,000-entry directory */
static void readdir_setup(struct target *t)
{
	t->nentries = opt.quick ? 100 : 1000;
	t->p1 = xasprintf("%s/many", t->dir);
	if (mkdir(t->p1, 0755) < 0)
		die("mkdir %s: %s", t->p1, strerror(errno));
	for (int k = 0; k < t->nentries; k++) {
		char *p = xasprintf("%s/e%04d.conf", t->p1, k);
		write_file(p, "x = 1\n", 6, false);
		free(p);
	}
}

static void readdir_op(struct target *t)
{
	DIR *d = opendir(t->p1);
	if (!d)
		die("opendir %s: %s", t->p1, strerror(errno));
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	if (n != t->nentries)
		die("readdir %s: %d entries, expected %d", t->p1, n, t->nentries);
}

/* durable commit: open O_TRUNC, write 4 KiB, fsync, close */
static void commit_setup(struct target *t)
{
	t->p2 = xasprintf("%s/commit.json", t->dir);
	json_config(buf4k, sizeof buf4k, 0);
	write_file(t->p2, buf4k, sizeof buf4k, true);
}

static void commit_path(const char *path, long rev)
{
	json_config(buf4k, sizeof buf4k, rev);
	int fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (write(fd, buf4k, sizeof buf4k) != (ssize_t)sizeof buf4k)
		die("write %s: %s", path, strerror(errno));
	if (fsync(fd) < 0)
		die("fsync %s: %s", path, strerror(errno));
	if (close(fd) < 0)
		die("close %s: %s", path, strerror(errno));
}

static void commit_op(struct target *t)
{
	commit_path(t->p2, ++t->i);
}

/* temp file + rename over the config (sed -i), durable */
static void replace_setup(struct target *t)
{
	t->p2 = xasprintf("%s/replaced.json", t->dir);
	json_config(buf4k, sizeof buf4k, 0);
	write_file(t->p2, buf4k, sizeof buf4k, true);
	if ((t->fd = open(t->dir, O_RDONLY | O_DIRECTORY)) < 0)
		die("open %s: %s", t->dir, strerror(errno));
}

static void fsync_dir(int fd, const char *dir)
{
	if (fsync(fd) < 0 && errno != EINVAL && errno != ENOSYS)
		die("fsync %s: %s", dir, strerror(errno));
}

static void replace_op(struct target *t)
{
	char tmp[64];
	long rev = ++t->i;
	snprintf(tmp, sizeof tmp, "sed%06ld", rev);
	json_config(buf4k, sizeof buf4k, rev);
	int fd = openat(t->fd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0)
		die("open %s/%s: %s", t->dir, tmp, strerror(errno));
	if (write(fd, buf4k, sizeof buf4k) != (ssize_t)sizeof buf4k || fsync(fd) < 0)
		die("write %s/%s: %s", t->dir, tmp, strerror(errno));
	if (close(fd) < 0)
		die("close %s/%s: %s", t->dir, tmp, strerror(errno));
	if (renameat(t->fd, tmp, t->fd, "replaced.json") < 0)
		die("rename %s/%s: %s", t->dir, tmp, strerror(errno));
	fsync_dir(t->fd, t->dir);
}

/* durable rollback: .control write then read of the new content; native:
 * symlink swap (symlink, rename over the old link, fsync of the directory) */
static vc_id control_id_of(const char *mnt, const char *name)
{
	char *ctl = xasprintf("%s/.control", mnt);
	size_t n = read_all(ctl);
	free(ctl);
	rbuf[n < sizeof rbuf ? n : sizeof rbuf - 1] = 0;
	for (char *line = strtok(rbuf, "\n"); line; line = strtok(NULL, "\n")) {
		char *tab = strrchr(line, '\t');
		if (tab && !strcmp(tab + 1, name))
			return strtoll(line, NULL, 10);
	}
	die("%s not listed in %s/.control", name, mnt);
}

static void rollback_setup(struct target *t)
{
	t->rev_a = 1001, t->rev_b = 1002;
	if (t->kind == VC) {
		t->p1 = xasprintf("%s/switched.json", t->dir);
		t->p2 = xasprintf("%s/.control", t->dir);
		json_config(buf4k, sizeof buf4k, t->rev_a);
		write_file(t->p1, buf4k, sizeof buf4k, true);
		t->id_a = control_id_of(t->dir, "switched.json");
		json_config(buf4k, sizeof buf4k, t->rev_b);
		write_file(t->p1, buf4k, sizeof buf4k, true);
		t->id_b = control_id_of(t->dir, "switched.json");
		if (t->id_a == t->id_b)
			die("rollback setup: one version for two contents");
		return;
	}
	t->p1 = xasprintf("%s/switched.json", t->dir);
	t->p2 = xasprintf("%s/switched.a.json", t->dir);
	t->p3 = xasprintf("%s/switched.b.json", t->dir);
	json_config(buf4k, sizeof buf4k, t->rev_a);
	write_file(t->p2, buf4k, sizeof buf4k, true);
	json_config(buf4k, sizeof buf4k, t->rev_b);
	write_file(t->p3, buf4k, sizeof buf4k, true);
	if (symlink("switched.b.json", t->p1) < 0)
		die("symlink %s: %s", t->p1, strerror(errno));
	if ((t->fd = open(t->dir, O_RDONLY | O_DIRECTORY)) < 0)
		die("open %s: %s", t->dir, strerror(errno));
	fsync(t->fd);
}

static void rollback_check(struct target *t, bool to_a)
{
	size_t n = read_all(t->p1);
	long want = to_a ? t->rev_a : t->rev_b;
	if (n != 4096 || json_rev(rbuf, n) != want)
		die("%s: read rev %ld after the switch, expected %ld", t->p1, json_rev(rbuf, n), want);
}

static void rollback_op(struct target *t)
{
	bool to_a = (t->i++ % 2) == 0;
	char cmd[32];
	int len = snprintf(cmd, sizeof cmd, "%lld\n", (long long)(to_a ? t->id_a : t->id_b));
	int fd = open(t->p2, O_WRONLY);
	if (fd < 0)
		die("open %s: %s", t->p2, strerror(errno));
	if (write(fd, cmd, len) != len)
		die("write %s: %s", t->p2, strerror(errno));
	close(fd);
	rollback_check(t, to_a);
}

static void rollback_native(struct target *t)
{
	bool to_a = (t->i++ % 2) == 0;
	if (symlinkat(to_a ? "switched.a.json" : "switched.b.json", t->fd, "switched.json.tmp") < 0)
		die("symlink in %s: %s", t->dir, strerror(errno));
	if (renameat(t->fd, "switched.json.tmp", t->fd, "switched.json") < 0)
		die("rename in %s: %s", t->dir, strerror(errno));
	fsync_dir(t->fd, t->dir);
	rollback_check(t, to_a);
}

/* the same durable commit vs git add + git commit (etckeeper) */
static void git_setup(struct target *t)
{
	if (t->kind == VC) {
		commit_setup(t);
		return;
	}
	static int nrepo;
	t->p1 = xasprintf("%s/gitrepo%d", t->dir, nrepo++);
	t->p2 = xasprintf("%s/app.json", t->p1);
	char *init[] = { "git", "init", "-q", t->p1, NULL };
	if (run(init, -1, -1))
		die("git init %s failed", t->p1);
	char *cfg1[] = { "git", "-C", t->p1, "config", "user.email", "bench@localhost", NULL };
	char *cfg2[] = { "git", "-C", t->p1, "config", "user.name", "bench", NULL };
	run(cfg1, -1, -1), run(cfg2, -1, -1);
	json_config(buf4k, sizeof buf4k, 0);
	write_file(t->p2, buf4k, sizeof buf4k, false);
	/* etckeeper: an /etc-sized tree, 1,000 files in 50 directories */
	for (int k = 0; t->nentries && k < t->nentries; k++) {
		char *d = xasprintf("%s/d%02d", t->p1, k % 50);
		mkdir(d, 0755);
		char *f = xasprintf("%s/f%04d.conf", d, k);
		char line[64];
		int n = snprintf(line, sizeof line, "# file %d\nkey = %d\n", k, k * 7);
		write_file(f, line, n, false);
		free(d), free(f);
	}
	char *add[] = { "git", "-C", t->p1, "add", "-A", NULL };
	char *ci[] = { "git", "-C", t->p1, "commit", "-q", "-m", "start", NULL };
	if (run(add, -1, -1) || run(ci, -1, -1))
		die("git commit in %s failed", t->p1);
}

static void etckeeper_setup(struct target *t)
{
	t->nentries = 1000;
	git_setup(t);
}

static void git_op(struct target *t)
{
	json_config(buf4k, sizeof buf4k, ++t->i);
	write_file(t->p2, buf4k, sizeof buf4k, false);
	char msg[32];
	snprintf(msg, sizeof msg, "rev %ld", t->i);
	char *add[] = { "git", "-C", t->p1, "add", "-A", NULL };
	char *ci[] = { "git", "-C", t->p1, "commit", "-q", "-m", msg, NULL };
	if (run(add, -1, -1) || run(ci, -1, -1))
		die("git commit in %s failed", t->p1);
}

static struct casedef cases[] = {
	{ "read4k", "open+read+close, unchanged 4 KiB config", TMPFS, 0.5, NULL,
	  read_setup, read_op, NULL, false },
	{ "pread256k", "pread of an open 256 KiB file", TMPFS, 0.9, NULL,
	  pread_setup, pread_op, NULL, false },
	{ "stat", "stat of the 4 KiB config", TMPFS, 0.8, NULL,
	  NULL, stat_op, NULL, false },
	{ "readdir1000", "opendir+readdir+closedir, 1,000 entries", TMPFS, 0.5, NULL,
	  readdir_setup, readdir_op, NULL, false },
	{ "commit", "open O_TRUNC+write 4 KiB+fsync+close", DISK, 0.8, NULL,
	  commit_setup, commit_op, NULL, false },
	{ "replace", "tmp+write+fsync+close+rename+fsync dir (sed -i)", DISK, 0.5, NULL,
	  replace_setup, replace_op, NULL, false },
	{ "rollback", ".control write, then read of new content", DISK, 0.5,
	  "symlink+rename+fsync dir, then read", rollback_setup, rollback_op, rollback_native, false },
	{ "commit_vs_git", "durable commit (as commit)", DISK, 50.0,
	  "git add -A + git commit in a 1,000-file repo (etckeeper), git defaults", etckeeper_setup,
	  commit_op, git_op, true },
	{ "commit_vs_git1", "durable commit (as commit)", DISK, 0,
	  "git add -A + git commit in a 1-file repo, git defaults (no target)", git_setup,
	  commit_op, git_op, true },
};
#define NCASES (sizeof cases / sizeof cases[0])

struct result {
	struct hist h[NTARGETS];
	bool have[NTARGETS];
	double ratio;
	/* parallel case */
	double min_reader[NTARGETS], writer_rate[NTARGETS], unloaded_rate[NTARGETS];
	long torn[NTARGETS];
};

static void batch(struct casedef *c, struct target *t, struct hist *h, double seconds,
		  long max_ops)
{
	void (*op)(struct target *) = (t->kind != VC && c->op_native) ? c->op_native : c->op;
	int64_t start = now_ns(), last = start, end = start + (int64_t)(seconds * 1e9);
	long n = 0;
	do {
		op(t);
		int64_t now = now_ns();
		if (h)
			hist_add(h, now - last);
		last = now;
		n++;
	} while (last < end && n < max_ops);
	if (h)
		h->time_ns += last - start;
}

static void run_case(struct casedef *c, struct target *tg, struct result *r)
{
	fprintf(stderr, "bench: %s ...\n", c->name);
	for (int k = 0; k < NTARGETS; k++) {
		r->have[k] = !(k == TMPFS && c->no_tmpfs) &&
			     !(k != VC && c->op_native == git_op && !have_git);
		if (!r->have[k])
			continue;
		if (c->setup)
			c->setup(&tg[k]);
		batch(c, &tg[k], NULL, opt.quick ? 0.005 : 0.05, 1000000); /* warm up */
	}
	for (int round = 0; round < opt.rounds; round++)
		for (int j = 0; j < NTARGETS; j++) {
			int k = (j + round) % NTARGETS;
			if (r->have[k])
				batch(c, &tg[k], &r->h[k], opt.batch_s, 50000000);
		}
	r->ratio = hist_rate(&r->h[c->ref]) ? hist_rate(&r->h[VC]) / hist_rate(&r->h[c->ref]) : 0;
}

/* ---- eight parallel readers while one writer commits -------------------- */

#define NREADERS 8
struct shared {
	volatile int go, stop;
	struct hist h[NREADERS];
	long torn[NREADERS];
};

static void parallel_phase(struct target *t, struct shared *sh, bool writer, struct hist *wh,
			   double seconds)
{
	pid_t pids[NREADERS];
	memset(sh, 0, sizeof *sh);
	for (int r = 0; r < NREADERS; r++) {
		if ((pids[r] = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (pids[r] == 0) {
			static char b[8192];
			while (!sh->go)
				;
			int64_t start = now_ns(), last = start;
			while (!sh->stop) {
				int fd = open(t->p1, O_RDONLY);
				if (fd < 0)
					_exit(2);
				ssize_t n, got = 0;
				while ((n = read(fd, b + got, sizeof b - got)) > 0)
					got += n;
				close(fd);
				if (n < 0)
					_exit(3);
				if (got != 4096 || json_rev(b, got) < 0 || memcmp(b + 4093, "\"}\n", 3))
					sh->torn[r]++;
				int64_t now = now_ns();
				hist_add(&sh->h[r], now - last);
				last = now;
			}
			sh->h[r].time_ns = last - start;
			_exit(0);
		}
	}
	usleep(20000);
	int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9);
	sh->go = 1;
	if (writer) {
		int64_t last = start;
		while (last < end) {
			commit_path(t->p1, ++t->i);
			int64_t now = now_ns();
			hist_add(wh, now - last);
			last = now;
		}
		wh->time_ns += last - start;
	} else {
		usleep((useconds_t)(seconds * 1e6));
	}
	sh->stop = 1;
	for (int r = 0; r < NREADERS; r++) {
		int st;
		waitpid(pids[r], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			die("parallel reader on %s failed", t->dir);
	}
}

static void run_parallel(struct target *tg, struct result *r)
{
	fprintf(stderr, "bench: parallel ...\n");
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	struct hist *unl = calloc(NTARGETS * NREADERS, sizeof *unl);
	struct hist *lod = calloc(NTARGETS * NREADERS, sizeof *lod);
	struct hist *wh = calloc(NTARGETS, sizeof *wh);
	double secs = opt.quick ? 0.05 : opt.batch_s * 2;
	for (int k = 0; k < NTARGETS; k++) {
		tg[k].p1 = xasprintf("%s/shared.json", tg[k].dir);
		json_config(buf4k, sizeof buf4k, 0);
		write_file(tg[k].p1, buf4k, sizeof buf4k, true);
		r->have[k] = true;
	}
	for (int round = 0; round < opt.rounds; round++)
		for (int j = 0; j < NTARGETS; j++) {
			int k = (j + round) % NTARGETS;
			parallel_phase(&tg[k], sh, false, NULL, secs);
			for (int i = 0; i < NREADERS; i++)
				hist_merge(&unl[k * NREADERS + i], &sh->h[i]);
			parallel_phase(&tg[k], sh, true, &wh[k], secs);
			for (int i = 0; i < NREADERS; i++) {
				hist_merge(&lod[k * NREADERS + i], &sh->h[i]);
				hist_merge(&r->h[k], &sh->h[i]);
				r->torn[k] += sh->torn[i];
			}
		}
	for (int k = 0; k < NTARGETS; k++) {
		double min = 1e9, un = 0;
		for (int i = 0; i < NREADERS; i++) {
			double a = hist_rate(&unl[k * NREADERS + i]), b = hist_rate(&lod[k * NREADERS + i]);
			un += a;
			if (a > 0 && b / a < min)
				min = b / a;
		}
		r->min_reader[k] = min == 1e9 ? 0 : min;
		r->unloaded_rate[k] = un;
		r->writer_rate[k] = hist_rate(&wh[k]);
		/* readers' aggregate rate: ops over one phase's wall time */
		r->h[k].time_ns /= NREADERS;
	}
	r->ratio = r->min_reader[VC];
	free(unl), free(lod), free(wh);
	munmap(sh, sizeof *sh);
}

/* ---- printing ---------------------------------------------------------- */

static char *cell(const struct result *r, int k)
{
	static char s[NTARGETS][96];
	if (!r->have[k] || !r->h[k].ops)
		return "–";
	const struct hist *h = &r->h[k];
	double rate = hist_rate(h);
	snprintf(s[k], sizeof s[k], rate >= 100 ? "%.0f (%.1f / %.1f)" : "%.1f (%.1f / %.1f)",
		 rate, hist_pct(h, 0.5), hist_pct(h, 0.99));
	return s[k];
}

static void json_hist(const struct hist *h)
{
	fprintf(jf, "{\"ops\": %llu, \"seconds\": %.4f, \"ops_per_s\": %.1f, \"p50_us\": %.2f, "
		"\"p99_us\": %.2f}", (unsigned long long)h->ops, h->time_ns / 1e9, hist_rate(h),
		hist_pct(h, 0.5), hist_pct(h, 0.99));
}

static void print_cases(struct result *res, struct result *par)
{
	printf("\n| case | verconf ops/s (p50 / p99 µs) | tmpfs | disk | ratio | target | met |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (size_t c = 0; c < NCASES; c++) {
		struct result *r = &res[c];
		char goal[32];
		snprintf(goal, sizeof goal, "≥ %g×", cases[c].goal);
		printf("| %s | %s | %s | %s | %.2f× %s | %s | %s |\n", cases[c].name, cell(r, VC),
		       cell(r, TMPFS), cell(r, DISK), r->ratio,
		       cases[c].ref == TMPFS ? "tmpfs" : cases[c].op_native == git_op ? "git" : "disk",
		       cases[c].goal ? goal : "–",
		       !cases[c].goal ? "–" : r->ratio >= cases[c].goal ? "yes" : "**no**");
	}
	if (par)
		printf("| parallel | %s | %s | %s | %.2f× solo | ≥ 0.5× | %s |\n", cell(par, VC),
		       cell(par, TMPFS), cell(par, DISK), par->ratio,
		       par->ratio >= 0.5 ? "yes" : "**no**");
	printf("\n");
	for (size_t c = 0; c < NCASES; c++)
		printf("- %s: %s%s%s\n", cases[c].name, cases[c].what,
		       cases[c].native_what ? "; native: " : "",
		       cases[c].native_what ? cases[c].native_what : "");
	if (par) {
		printf("- parallel: 8 reader processes (open+read+close of a 4 KiB config) while one "
		       "writer commits it durably; cells: readers' total ops/s under load; ratio: the "
		       "slowest reader's rate under load / its rate with no writer (\"solo\").\n");
		printf("  slowest reader vs solo: verconf %.2f, tmpfs %.2f, disk %.2f; readers' total "
		       "solo ops/s: verconf %.0f, tmpfs %.0f, disk %.0f; writer commits/s: verconf %.0f, "
		       "tmpfs %.0f, disk %.0f; reads of a partial file (native writers rewrite in place): %ld, "
		       "%ld, %ld\n",
		       par->min_reader[VC], par->min_reader[TMPFS], par->min_reader[DISK],
		       par->unloaded_rate[VC], par->unloaded_rate[TMPFS], par->unloaded_rate[DISK],
		       par->writer_rate[VC], par->writer_rate[TMPFS], par->writer_rate[DISK],
		       par->torn[VC], par->torn[TMPFS], par->torn[DISK]);
	}
	fflush(stdout);
	if (!jf)
		return;
	fprintf(jf, "  \"cases\": [\n");
	for (size_t c = 0; c <= NCASES; c++) {
		struct result *r = c < NCASES ? &res[c] : par;
		if (!r)
			break;
		fprintf(jf, "    {\"name\": \"%s\", ", c < NCASES ? cases[c].name : "parallel");
		for (int k = 0; k < NTARGETS; k++) {
			if (!r->have[k])
				continue;
			fprintf(jf, "\"%s\": ", target_name[k]);
			json_hist(&r->h[k]);
			fprintf(jf, ", ");
		}
		if (c == NCASES)
			fprintf(jf, "\"slowest_reader_vs_solo\": {\"verconf\": %.3f, \"tmpfs\": %.3f, "
				"\"disk\": %.3f}, \"writer_ops_per_s\": {\"verconf\": %.1f, \"tmpfs\": "
				"%.1f, \"disk\": %.1f}, \"torn_reads\": %ld, ",
				r->min_reader[VC], r->min_reader[TMPFS], r->min_reader[DISK],
				r->writer_rate[VC], r->writer_rate[TMPFS], r->writer_rate[DISK], r->torn[VC]);
		fprintf(jf, "\"ratio\": %.4f, \"ref\": \"%s\", \"target\": %g, \"met\": %s}%s\n",
			r->ratio,
			c == NCASES ? "solo" : cases[c].op_native == git_op ? "git"
						: target_name[cases[c].ref],
			c == NCASES ? 0.5 : cases[c].goal,
			r->ratio >= (c == NCASES ? 0.5 : cases[c].goal) ? "true" : "false",
			c < NCASES && (c + 1 < NCASES || par) ? "," : "");
	}
	fprintf(jf, "  ],\n");
}

static void do_cases(void)
{
	const char *dirs[NTARGETS] = { opt.vc, opt.tmpfs, opt.disk };
	struct target tg[NTARGETS];
	static struct result res[NCASES], par;
	for (size_t c = 0; c < NCASES; c++) {
		if (opt.only_case && strcmp(opt.only_case, cases[c].name))
			continue;
		memset(tg, 0, sizeof tg);
		for (int k = 0; k < NTARGETS; k++) {
			tg[k].kind = k;
			tg[k].dir = dirs[k];
			tg[k].fd = -1;
		}
		if (cases[c].op == stat_op)
			for (int k = 0; k < NTARGETS; k++)
				read_setup(&tg[k]);
		run_case(&cases[c], tg, &res[c]);
		for (int k = 0; k < NTARGETS; k++)
			if (tg[k].fd >= 0)
				close(tg[k].fd);
	}
	memset(tg, 0, sizeof tg);
	for (int k = 0; k < NTARGETS; k++)
		tg[k].kind = k, tg[k].dir = dirs[k], tg[k].fd = -1;
	if (opt.only_case && strcmp(opt.only_case, "parallel")) {
		print_cases(res, NULL);
		return;
	}
	run_parallel(tg, &par);
	print_cases(res, &par);
}

/* ---- scale: 10k / 100k / 1M versions over 10,000 paths ------------------- */

static vc_actor actor = { .uid = 0, .gid = 0, .pid = 0, .comm = "bench" };

static void scale_commit(vc_store *s, const char *path, enum vc_kind kind, const char *data,
			 size_t len)
{
	vc_commit_req rq = { .path = path, .kind = kind, .op = kind == VC_DIR ? VC_OP_MKDIR
		: VC_OP_WRITE, .data = data, .len = len, .mode = kind == VC_DIR ? 0755 : 0644,
		.status = VC_ACCEPTED, .actor = &actor };
	int rc = vc_commit(s, &rq, NULL, NULL);
	if (rc < 0)
		die("vc_commit %s: %s", path, vc_errmsg(s));
}

static long rss_kib(pid_t pid, const char *key)
{
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	FILE *f = fopen(p, "r");
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return v[n / 2];
}

/* Mount store on mnt with our own verconfd; returns its pid once the root
 * answers (bounded: 20 s).  The pid goes to WORK/scale.pid for bench.sh's trap. */
static pid_t scale_mount(const char *store, const char *mnt, double *ms)
{
	struct stat parent, st;
	char *pdir = xasprintf("%s/..", mnt);
	if (stat(pdir, &parent) < 0)
		die("stat %s: %s", pdir, strerror(errno));
	free(pdir);
	char *log = xasprintf("%s/scale-daemon.log", opt.work);
	int64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1), dup2(fd, 2);
		execl(opt.verconfd, opt.verconfd, store, mnt, "-f", (char *)NULL);
		_exit(127);
	}
	char *pidfile = xasprintf("%s/scale.pid", opt.work);
	char pids[32];
	snprintf(pids, sizeof pids, "%d\n", (int)pid);
	write_file(pidfile, pids, strlen(pids), false);
	free(pidfile);
	for (;;) {
		if (stat(mnt, &st) == 0 && st.st_dev != parent.st_dev)
			break;
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid)
			die("verconfd exited before mounting %s (see %s)", mnt, log);
		if (now_ns() - t0 > 20000000000LL) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			die("mount of %s did not appear within 20 s", mnt);
		}
		usleep(200);
	}
	*ms = (now_ns() - t0) / 1e6;
	free(log);
	return pid;
}

static void scale_umount(const char *mnt, pid_t pid)
{
	char *um[] = { "fusermount3", "-u", (char *)mnt, NULL };
	if (run(um, -1, -1)) {
		char *uz[] = { "fusermount3", "-uz", (char *)mnt, NULL };
		run(uz, -1, -1);
	}
	for (int k = 0; k < 400; k++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			goto done;
		usleep(25000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
done:;
	char *pidfile = xasprintf("%s/scale.pid", opt.work);
	unlink(pidfile);
	free(pidfile);
}

static double time_cmd(char *const argv[], int reps)
{
	double v[16];
	for (int k = 0; k < reps; k++) {
		int64_t t0 = now_ns();
		if (run(argv, -1, -1))
			die("%s %s failed", argv[0], argv[3]);
		v[k] = (now_ns() - t0) / 1e6;
	}
	return median(v, reps);
}

static void do_scale(void)
{
	int ndirs = opt.quick ? 10 : 100, per_dir = opt.quick ? 10 : 100;
	int npaths = ndirs * per_dir;
	long levels[3] = { 10000, 100000, 1000000 };
	int nlevels = 3;
	if (opt.quick)
		levels[0] = 1000, levels[1] = 3000, nlevels = 2; /* over 100 paths */
	char *store = xasprintf("%s/scale.db", opt.work);
	char *mnt = xasprintf("%s/scale-mnt", opt.work);
	if (mkdir(mnt, 0755) < 0 && errno != EEXIST)
		die("mkdir %s: %s", mnt, strerror(errno));
	char err[256];
	vc_store *s;
	if (vc_open(store, VC_OPEN_CREATE | VC_OPEN_WRITER | VC_OPEN_SYNC_NORMAL, &actor, &s, err,
		    sizeof err) < 0)
		die("vc_open %s: %s", store, err);
	char path[64], data[256];
	for (int d = 0; d < ndirs; d++) {
		snprintf(path, sizeof path, "d%02d", d);
		scale_commit(s, path, VC_DIR, NULL, 0);
	}
	long done = 0;
	double build_s = 0;
	printf("\n| versions (over %d paths) | build, versions/s | store MiB | mount ms | daemon RSS "
	       "MiB (mounted / after stat of every path) | `log PATH -n 20` ms | `tree --at SEQ` ms |\n"
	       "|---|---|---|---|---|---|---|\n", npaths);
	if (jf)
		fprintf(jf, "  \"scale\": [\n");
	for (int l = 0; l < nlevels; l++) {
		fprintf(stderr, "bench: scale %ld versions ...\n", levels[l]);
		if (!s && vc_open(store, VC_OPEN_WRITER | VC_OPEN_SYNC_NORMAL, &actor, &s, err,
				  sizeof err) < 0)
			die("vc_open %s: %s", store, err);
		int64_t t0 = now_ns();
		for (; done < levels[l]; done++) {
			long p = done % npaths, rev = done / npaths;
			snprintf(path, sizeof path, "d%02ld/f%02ld.conf", p / per_dir, p % per_dir);
			int n = snprintf(data, sizeof data, "# %s\nrev = %ld\nname = \"service-%ld\"\n"
					 "listen = 10.0.%ld.%ld:8080\nworkers = %ld\n", path, rev, p,
					 p / 256, p % 256, 1 + rev % 16);
			scale_commit(s, path, VC_FILE, data, n);
		}
		double secs = (now_ns() - t0) / 1e9;
		build_s += secs;
		vc_id seq;
		vc_last_seq(s, &seq);
		vc_close(s);
		s = NULL;
		struct stat st;
		stat(store, &st);
		double mount_ms[3];
		long rss0 = 0, rss1 = 0;
		for (int k = 0; k < 3; k++) {
			pid_t pid = scale_mount(store, mnt, &mount_ms[k]);
			if (k == 0) {
				rss0 = rss_kib(pid, "VmRSS:");
				for (long p = 0; p < npaths; p++) {
					char *fp = xasprintf("%s/d%02ld/f%02ld.conf", mnt, p / per_dir,
							     p % per_dir);
					struct stat fst;
					if (stat(fp, &fst) < 0)
						die("stat %s: %s", fp, strerror(errno));
					free(fp);
				}
				rss1 = rss_kib(pid, "VmRSS:");
			}
			scale_umount(mnt, pid);
		}
		double mms = median(mount_ms, 3);
		char seqs[32];
		snprintf(seqs, sizeof seqs, "%lld", (long long)seq);
		char *logc[] = { (char *)opt.verconf, "--store", store, "log", "d00/f00.conf", "-n",
				 "20", NULL };
		char *treec[] = { (char *)opt.verconf, "--store", store, "tree", "--at", seqs, NULL };
		double log_ms = time_cmd(logc, 5), tree_ms = time_cmd(treec, 3);
		printf("| %ld | %.0f | %.1f | %.1f | %.1f / %.1f | %.1f | %.1f |\n", levels[l],
		       (levels[l] - (l ? levels[l - 1] : 0)) / secs, st.st_size / 1048576.0, mms,
		       rss0 / 1024.0, rss1 / 1024.0, log_ms, tree_ms);
		fflush(stdout);
		if (jf)
			fprintf(jf, "    {\"versions\": %ld, \"paths\": %d, \"build_versions_per_s\": %.0f, "
				"\"store_bytes\": %lld, \"mount_ms\": %.2f, \"rss_kib_mounted\": %ld, "
				"\"rss_kib_after_stat_all\": %ld, \"log_n20_ms\": %.2f, "
				"\"tree_at_ms\": %.2f}%s\n", levels[l], npaths,
				(levels[l] - (l ? levels[l - 1] : 0)) / secs, (long long)st.st_size, mms,
				rss0, rss1, log_ms, tree_ms, l + 1 < nlevels ? "," : "");
	}
	if (jf)
		fprintf(jf, "  ],\n");
	printf("\nTargets at 1M versions: mount ≤ 100 ms, RSS ≤ 32 MiB, log ≤ 10 ms, tree ≤ 200 ms "
	       "(log and tree timed as whole `verconf --store` processes, medians; mount: start of "
	       "verconfd until the mount root answers, median of 3; RSS: VmRSS).\n");
	if (s)
		vc_close(s);
	unlink(store);
	free(store), free(mnt);
}

/* ---- store growth vs git -------------------------------------------------- */

static long long du_bytes(const char *dir)
{
	long long sum = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0)
			sum += S_ISDIR(st.st_mode) ? du_bytes(p) : st.st_size;
		free(p);
	}
	closedir(d);
	return sum;
}

#define NKEYS 394 /* about 20 KiB */
static int growth_doc(char *buf, size_t cap, const long *vals)
{
	int n = snprintf(buf, cap, "{\n");
	for (int k = 0; k < NKEYS; k++)
		n += snprintf(buf + n, cap - n, "  \"setting_%03d\": {\"value\": %8ld, \"unit\": \"ms\"}%s\n",
			      k, vals[k], k + 1 < NKEYS ? "," : "");
	n += snprintf(buf + n, cap - n, "}\n");
	return n;
}

static void do_growth(void)
{
	long ncommits = opt.quick ? 200 : 10000;
	long vals[NKEYS];
	static char doc[64 << 10];
	for (int k = 0; k < NKEYS; k++)
		vals[k] = 1000 + k;
	fprintf(stderr, "bench: growth, %ld commits ...\n", ncommits);
	char *store = xasprintf("%s/growth.db", opt.work);
	char *repo = xasprintf("%s/growth.git", opt.work);
	char err[256];
	vc_store *s;
	if (vc_open(store, VC_OPEN_CREATE | VC_OPEN_WRITER | VC_OPEN_SYNC_NORMAL, &actor, &s, err,
		    sizeof err) < 0)
		die("vc_open %s: %s", store, err);
	char *init[] = { "git", "init", "-q", "--bare", repo, NULL };
	if (have_git && run(init, -1, -1))
		die("git init %s failed", repo);
	int pfd[2];
	if (pipe(pfd) < 0)
		die("pipe: %s", strerror(errno));
	pid_t fi = fork();
	if (fi == 0) {
		close(pfd[1]);
		char *gd = xasprintf("--git-dir=%s", repo);
		dup2(pfd[0], 0);
		if (!have_git) { /* swallow the stream */
			char b[65536];
			while (read(0, b, sizeof b) > 0)
				;
			_exit(0);
		}
		execlp("git", "git", gd, "fast-import", "--quiet", (char *)NULL);
		_exit(127);
	}
	close(pfd[0]);
	FILE *gf = fdopen(pfd[1], "w");
	int64_t t0 = now_ns();
	size_t len = 0, raw = 0;
	for (long i = 0; i < ncommits; i++) {
		if (i)
			vals[(i * 7) % NKEYS] = i;
		len = growth_doc(doc, sizeof doc, vals);
		raw += len;
		scale_commit(s, "config.json", VC_FILE, doc, len);
		fprintf(gf, "commit refs/heads/main\ncommitter bench <bench@localhost> %ld +0000\n"
			"data 8\nrev %4ld\nM 100644 inline config.json\ndata %zu\n", 1700000000 + i,
			i % 10000, len);
		fwrite(doc, 1, len, gf);
		fputc('\n', gf);
	}
	double store_s = (now_ns() - t0) / 1e9;
	vc_close(s);
	fclose(gf);
	int st;
	waitpid(fi, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("git fast-import failed");
	char *gd = xasprintf("--git-dir=%s", repo);
	char *gc[] = { "git", gd, "gc", "-q", NULL };
	if (have_git && run(gc, -1, -1))
		die("git gc failed");
	struct stat sst;
	long long store_bytes = 0;
	if (stat(store, &sst) == 0)
		store_bytes = sst.st_size;
	char *wal = xasprintf("%s-wal", store);
	if (stat(wal, &sst) == 0)
		store_bytes += sst.st_size;
	long long git_bytes = du_bytes(repo);
	printf("\n| history | raw bytes | verconf store | git after `git gc` | store / git |\n"
	       "|---|---|---|---|---|\n"
	       "| %ld commits of a %zu-byte JSON config, one value changed each | %.1f MiB | "
	       "%.2f MiB | %.2f MiB | %.1f× |\n", ncommits, len, raw / 1048576.0,
	       store_bytes / 1048576.0, git_bytes / 1048576.0,
	       git_bytes ? (double)store_bytes / git_bytes : 0);
	printf("\n(store written through the store API at %.0f commits/s, synchronous=NORMAL; target: "
	       "store no larger than git)\n", ncommits / store_s);
	if (jf)
		fprintf(jf, "  \"growth\": {\"commits\": %ld, \"doc_bytes\": %zu, \"raw_bytes\": %zu, "
			"\"store_bytes\": %lld, \"git_gc_bytes\": %lld, \"store_over_git\": %.3f, "
			"\"met\": %s},\n", ncommits, len, raw, store_bytes, git_bytes,
			git_bytes ? (double)store_bytes / git_bytes : 0,
			store_bytes <= git_bytes ? "true" : "false");
	unlink(store), unlink(wal);
	char *rm[] = { "rm", "-rf", repo, NULL };
	run(rm, -1, -1);
	free(store), free(repo), free(gd), free(wal);
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: bench --vc MNT --tmpfs DIR --disk DIR --work DIR --verconfd BIN "
		"--verconf BIN [--quick] [--rounds N] [--ms N] [--only cases|scale|growth] "
		"[--case NAME] [--json FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vc", 1, NULL, 'v' }, { "tmpfs", 1, NULL, 't' }, { "disk", 1, NULL, 'd' },
		{ "work", 1, NULL, 'w' }, { "verconfd", 1, NULL, 'D' }, { "verconf", 1, NULL, 'V' },
		{ "json", 1, NULL, 'j' }, { "only", 1, NULL, 'o' }, { "quick", 0, NULL, 'q' },
		{ "case", 1, NULL, 'c' }, { "rounds", 1, NULL, 'r' }, { "ms", 1, NULL, 'm' },
		{ NULL, 0, NULL, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vc = optarg; break;
		case 't': opt.tmpfs = optarg; break;
		case 'd': opt.disk = optarg; break;
		case 'w': opt.work = optarg; break;
		case 'D': opt.verconfd = optarg; break;
		case 'V': opt.verconf = optarg; break;
		case 'j': opt.json = optarg; break;
		case 'o': opt.only = optarg; break;
		case 'q': opt.quick = true; break;
		case 'c': opt.only_case = optarg; break;
		case 'r': opt.rounds = atoi(optarg); break;
		case 'm': opt.batch_s = atoi(optarg) / 1000.0; break;
		default: usage();
		}
	}
	bool all = !opt.only;
	bool want_cases = all || !strcmp(opt.only, "cases");
	bool want_scale = all || !strcmp(opt.only, "scale");
	bool want_growth = all || !strcmp(opt.only, "growth");
	if ((want_cases && (!opt.vc || !opt.tmpfs || !opt.disk)) || !opt.work ||
	    (want_scale && (!opt.verconfd || !opt.verconf)) || opt.rounds < 1)
		usage();
	if (opt.quick) {
		if (opt.rounds > 2)
			opt.rounds = 1;
		opt.batch_s = 0.02;
	}
	struct utsname u;
	uname(&u);
	char when[64];
	time_t now = time(NULL);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("verconf bench %s, %s %s, %ld CPUs, %d rounds × %.0f ms per target%s\n", when,
	       u.sysname, u.release, ncpu, opt.rounds, opt.batch_s * 1000,
	       opt.quick ? " (--quick: smoke only, figures meaningless)" : "");
	if (opt.json) {
		if (!(jf = fopen(opt.json, "w")))
			die("%s: %s", opt.json, strerror(errno));
		fprintf(jf, "{\n  \"when\": \"%s\", \"kernel\": \"%s\", \"cpus\": %ld, \"quick\": %s, "
			"\"rounds\": %d, \"batch_ms\": %.0f,\n", when, u.release, ncpu,
			opt.quick ? "true" : "false", opt.rounds, opt.batch_s * 1000);
	}
	char *gv[] = { "git", "--version", NULL };
	have_git = run(gv, -1, -1) == 0;
	if (!have_git)
		fprintf(stderr, "bench: no git: the git comparisons are skipped\n");
	if (want_cases)
		do_cases();
	if (want_scale)
		do_scale();
	if (want_growth)
		do_growth();
	if (jf) {
		fprintf(jf, "  \"done\": true\n}\n");
		fclose(jf);
	}
	return 0;
}
