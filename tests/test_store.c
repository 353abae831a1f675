/*
 * Unit tests of the content store (store/store.c), no FUSE involved.
 *
 *   test_store CASE    run one case: exit 0 on success, 1 with a message on
 *                      stderr on failure
 *   test_store --list  list the cases (tests/meson.build registers each one
 *                      as its own meson test)
 *
 * Each case works in its own mkdtemp() directory, removed at exit.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* ---- harness ----------------------------------------------------------- */

static char dir[64];
static char dbfile[128];
static vc_store *S; /* the store under test, for error messages */

static void fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
static void fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (S)
		fprintf(stderr, " [store: %s]", vc_errmsg(S));
	fputc('\n', stderr);
	exit(1);
}

#define CHECK(c)                                                              \
	do {                                                                  \
		if (!(c))                                                     \
			fail(__FILE__, __LINE__, "check failed: %s", #c);     \
	} while (0)

/* expr must return want (0 or -errno). */
#define CHECK_RC(expr, want)                                                  \
	do {                                                                  \
		long long rc_ = (expr), want_ = (want);                       \
		if (rc_ != want_)                                             \
			fail(__FILE__, __LINE__, "%s = %lld (%s), want %lld (%s)", \
			     #expr, rc_, strerror((int)-rc_), want_,          \
			     strerror((int)-want_));                          \
	} while (0)

#define CHECK_EQ(a, b)                                                        \
	do {                                                                  \
		long long a_ = (a), b_ = (b);                                 \
		if (a_ != b_)                                                 \
			fail(__FILE__, __LINE__, "%s = %lld, want %lld (%s)", #a, \
			     a_, b_, #b);                                     \
	} while (0)

#define CHECK_STR(a, b)                                                       \
	do {                                                                  \
		const char *a_ = (a), *b_ = (b);                              \
		if (strcmp(a_, b_))                                           \
			fail(__FILE__, __LINE__, "%s = \"%s\", want \"%s\"", #a, a_, b_); \
	} while (0)

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	snprintf(dbfile, sizeof dbfile, "%s/store.db", dir);
}

static const vc_actor ACTOR = { .uid = 1000, .gid = 100, .pid = 4242, .comm = "tester" };

static vc_store *open_store(int flags)
{
	char err[512] = "";
	vc_store *s;
	int rc = vc_open(dbfile, flags, &ACTOR, &s, err, sizeof err);

	if (rc)
		fail(__FILE__, __LINE__, "vc_open(%s) = %d: %s", dbfile, rc, err);
	return s;
}

static vc_store *new_store(void)
{
	return S = open_store(VC_OPEN_CREATE | VC_OPEN_WRITER);
}

static void close_store(void)
{
	vc_close(S);
	S = NULL;
}

/* vc_open expected to fail with want; returns its message. */
static const char *open_fails(const char *file, int flags, int want)
{
	static char err[512];
	vc_store *s = (vc_store *)1;
	int rc;

	err[0] = 0;
	rc = vc_open(file, flags, &ACTOR, &s, err, sizeof err);
	if (rc != want)
		fail(__FILE__, __LINE__, "vc_open(%s) = %d (%s), want %d; err: %s", file, rc,
		     strerror(-rc), want, err);
	CHECK(s == NULL);
	CHECK(err[0] != 0);
	fprintf(stderr, "vc_open(%s): %s\n", file, err);
	return err;
}

static int commit_full(const char *path, enum vc_kind kind, enum vc_op op, const char *data,
		       uint32_t mode, enum vc_status status, vc_id *id, int *created)
{
	vc_commit_req r = {
		.path = path, .kind = kind, .op = op, .data = data,
		.len = data ? strlen(data) : 0, .mode = mode, .uid = 1000, .gid = 100,
		.status = status, .reason = status ? "invalid JSON" : NULL, .actor = &ACTOR,
	};

	return vc_commit(S, &r, id, created);
}

/* A new accepted file version; its id. */
static vc_id put(const char *path, const char *data)
{
	vc_id id = 0;
	int created = -1;

	CHECK_RC(commit_full(path, VC_FILE, VC_OP_WRITE, data, 0644, VC_ACCEPTED, &id, &created), 0);
	CHECK(id > 0);
	return id;
}

static vc_id mkdir_(const char *path)
{
	vc_id id = 0;

	CHECK_RC(commit_full(path, VC_DIR, VC_OP_MKDIR, NULL, 0755, VC_ACCEPTED, &id, NULL), 0);
	return id;
}

/* The live content of path is want. */
static void content_is(const char *path, const char *want)
{
	vc_entry e;
	void *buf;
	size_t len;

	CHECK_RC(vc_lookup(S, path, &e), 0);
	CHECK_RC(vc_read_content(S, e.head.id, &buf, &len), 0);
	if (len != strlen(want) || (len && memcmp(buf, want, len)))
		fail(__FILE__, __LINE__, "%s contains \"%.*s\", want \"%s\"", path, (int)len,
		     (char *)buf, want);
	free(buf);
}

static vc_id head_of(const char *path)
{
	vc_entry e;

	CHECK_RC(vc_lookup(S, path, &e), 0);
	return e.head.id;
}

static vc_id last_seq(void)
{
	vc_id seq;

	CHECK_RC(vc_last_seq(S, &seq), 0);
	return seq;
}

/* ---- raw SQLite access, bypassing the library -------------------------- */

static sqlite3 *raw_open(void)
{
	sqlite3 *db;

	CHECK(sqlite3_open_v2(dbfile, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static long long raw_int(const char *sql)
{
	sqlite3 *db = raw_open();
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail(__FILE__, __LINE__, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Runs sql; returns the SQLite result code, the message into msg. */
static int raw_exec(const char *sql, char *msg, size_t n)
{
	sqlite3 *db = raw_open();
	char *m = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &m);

	if (msg)
		snprintf(msg, n, "%s", m ? m : "");
	sqlite3_free(m);
	sqlite3_close(db);
	return rc;
}

static void raw_ok(const char *sql)
{
	char msg[256];

	if (raw_exec(sql, msg, sizeof msg) != SQLITE_OK)
		fail(__FILE__, __LINE__, "%s: %s", sql, msg);
}

/* ---- listing helpers --------------------------------------------------- */

struct names {
	char buf[4096];
	int n;
};

static int add_name(const char *name, const vc_entry *e, void *ctx)
{
	struct names *n = ctx;
	size_t len = strlen(n->buf);

	snprintf(n->buf + len, sizeof n->buf - len, "%s%s=%lld", n->n++ ? " " : "", name,
		 (long long)e->head.id);
	return 0;
}

static int add_name_only(const char *name, const vc_entry *e, void *ctx)
{
	struct names *n = ctx;
	size_t len = strlen(n->buf);

	(void)e;
	snprintf(n->buf + len, sizeof n->buf - len, "%s%s", n->n++ ? " " : "", name);
	return 0;
}

/* "path=id ..." of the tree after seq. */
static const char *tree(vc_id seq, struct names *n)
{
	n->buf[0] = 0;
	n->n = 0;
	CHECK_RC(vc_tree_at(S, seq, add_name, n), 0);
	return n->buf;
}

/* Same format, of the live tree now. */
static const char *live(struct names *n)
{
	n->buf[0] = 0;
	n->n = 0;
	CHECK_RC(vc_list_paths(S, 0, add_name, n), 0);
	return n->buf;
}

struct vlist {
	int n;
	vc_version v[16];
};

static int add_version(const vc_version *v, void *ctx)
{
	struct vlist *l = ctx;

	if (l->n < 16)
		l->v[l->n++] = *v;
	return 0;
}

static struct vlist *versions_of(const char *path)
{
	static struct vlist l;

	memset(&l, 0, sizeof l);
	CHECK_RC(vc_list_versions(S, path, 0, add_version, &l), 0);
	return &l;
}

struct jlist {
	int n;
	vc_journal_entry j[8];
};

static int add_journal(const vc_journal_entry *j, void *ctx)
{
	struct jlist *l = ctx;

	if (l->n < 8)
		l->j[l->n] = *j;
	l->n++;
	return 0;
}

struct lines {
	int n;
	char text[2048];
};

static int add_line(const char *problem, void *ctx)
{
	struct lines *l = ctx;
	size_t len = strlen(l->text);

	snprintf(l->text + len, sizeof l->text - len, "%s\n", problem);
	l->n++;
	return 0;
}

/* vc_fsck finds nothing; the problems are shown otherwise. */
#define FSCK_CLEAN()                                                          \
	do {                                                                  \
		struct lines l_ = { 0 };                                      \
		int n_ = vc_fsck(S, add_line, &l_);                           \
		if (n_ != 0)                                                  \
			fail(__FILE__, __LINE__, "fsck: %d problems:\n%s", n_, l_.text); \
	} while (0)

/* ---- cases ------------------------------------------------------------- */

/* A new store: root is the first version and journal entry. */
static void t_new_store(void)
{
	vc_entry e;
	struct jlist jl = { 0 };
	vc_journal_filter f = { .uid = -1 };

	new_store();
	CHECK_RC(vc_lookup(S, "", &e), 0);
	CHECK_EQ(e.head.id, 1);
	CHECK_EQ(e.head.kind, VC_DIR);
	CHECK_EQ(e.head.op, VC_OP_MKDIR);
	CHECK_EQ(e.head.mode, 0755);
	CHECK_EQ(e.head.uid, ACTOR.uid);
	CHECK_EQ(e.head.gid, ACTOR.gid);
	CHECK_STR(e.head.actor.comm, "tester");
	CHECK_EQ(last_seq(), 1);
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 1);
	CHECK_EQ(jl.j[0].action, VC_ACT_COMMIT);
	CHECK_EQ(jl.j[0].from_version, 0);
	CHECK_EQ(jl.j[0].to_version, 1);
	CHECK_STR(vc_filename(S), dbfile);
	close_store();
	CHECK_EQ(raw_int("PRAGMA application_id"), 0x76636f6e);
	CHECK_EQ(raw_int("PRAGMA user_version"), 1);
	CHECK_EQ(raw_int("SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
	CHECK_EQ(raw_int("SELECT count(*) FROM journal WHERE action = 'commit'"), 1);
	CHECK_EQ(raw_int("SELECT count(*) FROM versions WHERE kind = 'dir' AND op = 'mkdir'"
			 " AND status = 'accepted' AND blob_id IS NULL"), 1);
	/* Reopening an existing store works without CREATE. */
	S = open_store(VC_OPEN_WRITER);
	CHECK_EQ(head_of(""), 1);
	close_store();
}

static void t_dedup(void)
{
	vc_entry a, b;

	new_store();
	vc_id va = put("a", "same bytes");
	vc_id vb = put("b", "same bytes");
	CHECK(va != vb);
	CHECK_RC(commit_full("l", VC_SYMLINK, VC_OP_SYMLINK, "same bytes", 0777, VC_ACCEPTED,
			     NULL, NULL), 0);
	put("c", "other bytes");
	CHECK_RC(vc_lookup(S, "a", &a), 0);
	CHECK_RC(vc_lookup(S, "b", &b), 0);
	CHECK(!memcmp(a.head.sha256, b.head.sha256, 32));
	CHECK_EQ(a.head.size, 10);
	content_is("l", "same bytes");
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs"), 2);
	CHECK_EQ(raw_int("SELECT count(DISTINCT blob_id) FROM versions v JOIN paths p"
			 " ON p.id = v.path_id WHERE p.path IN ('a', 'b', 'l')"), 1);
	CHECK_EQ(raw_int("SELECT count(*) FROM versions WHERE kind = 'symlink'"), 1);
}

static void t_noop(void)
{
	vc_id id1, id2;
	int created;

	new_store();
	CHECK_RC(commit_full("a", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, &id1, &created), 0);
	CHECK_EQ(created, 1);
	vc_id seq = last_seq();
	CHECK_RC(commit_full("a", VC_FILE, VC_OP_WRITE, "x", 0644, VC_ACCEPTED, &id2, &created), 0);
	CHECK_EQ(created, 0);
	CHECK_EQ(id2, id1);
	CHECK_EQ(last_seq(), seq);
	/* The same bytes with another mode is a change. */
	CHECK_RC(commit_full("a", VC_FILE, VC_OP_CHMOD, "x", 0600, VC_ACCEPTED, &id2, &created), 0);
	CHECK_EQ(created, 1);
	CHECK(id2 > id1);
	CHECK_EQ(last_seq(), seq + 1);
	/* Directories: same mode and owner is a no-op too. */
	vc_id d = mkdir_("d");
	CHECK_EQ(mkdir_("d"), d);
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM versions"), 4);
}

static void raw_refused(const char *sql, const char *table)
{
	char msg[256], want[64];
	int rc = raw_exec(sql, msg, sizeof msg);

	snprintf(want, sizeof want, "verconf: %s rows are immutable", table);
	if (rc == SQLITE_OK || !strstr(msg, want))
		fail(__FILE__, __LINE__, "%s: rc %d, message \"%s\"", sql, rc, msg);
}

static void t_immutable(void)
{
	new_store();
	put("a", "one");
	close_store();
	raw_refused("UPDATE versions SET mode = 511", "versions");
	raw_refused("DELETE FROM versions", "versions");
	raw_refused("UPDATE blobs SET data = 'evil'", "blobs");
	raw_refused("DELETE FROM blobs", "blobs");
	raw_refused("UPDATE journal SET action = 'delete'", "journal");
	raw_refused("DELETE FROM journal", "journal");
	CHECK_EQ(raw_int("SELECT count(*) FROM versions"), 2);
	CHECK_EQ(raw_int("SELECT count(*) FROM journal"), 2);
	/* paths is the one mutable table (heads and times). */
	raw_ok("UPDATE paths SET atime_ns = 1 WHERE path = 'a'");
	S = open_store(VC_OPEN_WRITER);
	FSCK_CLEAN();
	close_store();
}

static void t_rollback_activate(void)
{
	vc_entry e1, e2;
	vc_id now;

	new_store();
	vc_id v1 = put("a", "v1");
	vc_id v2 = put("a", "v2");
	vc_id v3 = put("a", "v3");
	CHECK_RC(vc_lookup(S, "a", &e1), 0);
	CHECK_RC(vc_activate(S, v1, "a", &ACTOR), 0);
	content_is("a", "v1");
	CHECK_RC(vc_lookup(S, "a", &e2), 0);
	/* A head move sets mtime and ctime to the move's time. */
	{
		struct jlist jl = { 0 };
		vc_journal_filter f = { .uid = -1, .limit = 1 };

		CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
		CHECK_EQ(jl.j[0].action, VC_ACT_ACTIVATE);
		CHECK_EQ(jl.j[0].from_version, v3);
		CHECK_EQ(jl.j[0].to_version, v1);
		CHECK_EQ(e2.mtime_ns, jl.j[0].time_ns);
		CHECK_EQ(e2.ctime_ns, jl.j[0].time_ns);
		CHECK(e2.mtime_ns >= e1.mtime_ns);
	}
	/* Rollback goes back to what was shown before the last move: v3. */
	CHECK_RC(vc_rollback(S, "a", &ACTOR, &now), 0);
	CHECK_EQ(now, v3);
	content_is("a", "v3");
	/* And rolling back the rollback returns to v1. */
	CHECK_RC(vc_rollback(S, "a", &ACTOR, &now), 0);
	CHECK_EQ(now, v1);
	/* Roll forward to v2 with activate, without expect_path. */
	CHECK_RC(vc_activate(S, v2, NULL, &ACTOR), 0);
	content_is("a", "v2");
	vc_id seq = last_seq();
	CHECK_RC(vc_activate(S, v2, "a", &ACTOR), 0); /* already head: no-op */
	CHECK_EQ(last_seq(), seq);
	/* Rolling back the first commit deletes the path. */
	put("b", "b1");
	CHECK_RC(vc_rollback(S, "b", &ACTOR, &now), 0);
	CHECK_EQ(now, 0);
	CHECK_RC(vc_lookup(S, "b", &e1), -ENOENT);
	CHECK_RC(vc_rollback(S, "nothing", &ACTOR, &now), -ENOENT);
	/* The root has no earlier state. */
	CHECK_RC(vc_rollback(S, "", &ACTOR, &now), -EBUSY);
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM journal WHERE action = 'rollback'"), 3);
	CHECK_EQ(raw_int("SELECT count(*) FROM journal WHERE action = 'activate'"), 2);
}

static void t_activate_errors(void)
{
	vc_id rej;
	char m1[1024], m2[1024], m3[1024];

	new_store();
	vc_id a1 = put("a", "good");
	vc_id b1 = put("b", "other");
	CHECK_RC(commit_full("a", VC_FILE, VC_OP_WRITE, "{bad", 0644, VC_REJECTED, &rej, NULL), 0);
	CHECK(rej > b1);
	CHECK_EQ(head_of("a"), a1);

	CHECK_RC(vc_activate(S, rej, "a", &ACTOR), -EINVAL);
	snprintf(m1, sizeof m1, "%s", vc_errmsg(S));
	CHECK_RC(vc_activate(S, 999999, "a", &ACTOR), -ENOENT);
	snprintf(m2, sizeof m2, "%s", vc_errmsg(S));
	CHECK_RC(vc_activate(S, b1, "a", &ACTOR), -EXDEV);
	snprintf(m3, sizeof m3, "%s", vc_errmsg(S));
	CHECK(m1[0] && m2[0] && m3[0]);
	CHECK(strcmp(m1, m2) && strcmp(m2, m3) && strcmp(m1, m3));
	CHECK(strstr(m1, "rejected"));
	CHECK(strstr(m3, "\"b\""));
	CHECK_EQ(head_of("a"), a1);
	CHECK_EQ(head_of("b"), b1);
	close_store();
}

static void t_rejected(void)
{
	vc_version v;
	vc_id rej, id;
	struct jlist jl = { 0 };
	vc_journal_filter f = { .path = "a", .uid = -1 };

	new_store();
	vc_id a1 = put("a", "good");
	vc_id seq = last_seq();
	CHECK_RC(commit_full("a", VC_FILE, VC_OP_WRITE, "{bad", 0644, VC_REJECTED, &rej, NULL), 0);
	CHECK_EQ(head_of("a"), a1);
	CHECK_EQ(last_seq(), seq);
	CHECK_RC(vc_get_version(S, rej, &v), 0);
	CHECK_EQ(v.status, VC_REJECTED);
	CHECK_STR(v.reason, "invalid JSON");
	CHECK_STR(v.path, "a");
	/* A rejected first version of a new path creates no live path. */
	CHECK_RC(commit_full("n", VC_FILE, VC_OP_CREATE, "{", 0644, VC_REJECTED, &id, NULL), 0);
	CHECK_RC(vc_lookup(S, "n", &(vc_entry){ 0 }), -ENOENT);
	CHECK_EQ(versions_of("a")->n, 2);
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 1);
	/* A rejected version needs no live parent nor the path's kind: a
	 * writer whose directory went away, or whose name became a directory,
	 * keeps its bytes in history.  An accepted one still needs both. */
	mkdir_("d");
	put("d/f", "old");
	CHECK_RC(vc_delete(S, "d/f", &ACTOR), 0);
	CHECK_RC(vc_delete(S, "d", &ACTOR), 0);
	CHECK_RC(commit_full("d/f", VC_FILE, VC_OP_WRITE, "late", 0644, VC_REJECTED, &id, NULL), 0);
	CHECK_RC(vc_get_version(S, id, &v), 0);
	CHECK_STR(v.path, "d/f");
	CHECK_RC(commit_full("d/new", VC_FILE, VC_OP_CREATE, "new", 0644, VC_REJECTED, &id, NULL), 0);
	CHECK_RC(vc_lookup(S, "d", &(vc_entry){ 0 }), -ENOENT);
	CHECK_RC(commit_full("d/f", VC_FILE, VC_OP_WRITE, "x", 0644, VC_ACCEPTED, NULL, NULL), -ENOENT);
	mkdir_("a2");
	CHECK_RC(commit_full("a2", VC_FILE, VC_OP_WRITE, "file bytes", 0644, VC_REJECTED, &id, NULL), 0);
	vc_entry e;
	CHECK_RC(vc_lookup(S, "a2", &e), 0);
	CHECK_EQ(e.head.kind, VC_DIR);
	CHECK_RC(commit_full("nowhere/f", VC_FILE, VC_OP_WRITE, "x", 0644, VC_REJECTED, NULL, NULL),
		 -ENOENT);
	close_store();
}

static void t_commit_rules(void)
{
	vc_entry e1, e2;
	struct jlist jl = { 0 };
	vc_journal_filter f = { .path = "a", .uid = -1, .limit = 1 };

	new_store();
	CHECK_RC(commit_full("nodir/a", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL),
		 -ENOENT);
	CHECK(vc_errmsg(S)[0]);
	put("f", "file");
	CHECK_RC(commit_full("f/a", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL),
		 -ENOTDIR);
	CHECK_RC(commit_full("f", VC_DIR, VC_OP_MKDIR, NULL, 0755, VC_ACCEPTED, NULL, NULL), -EEXIST);
	mkdir_("d");
	CHECK_RC(commit_full("d", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL), -EEXIST);
	CHECK_RC(commit_full("", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL), -EEXIST);
	/* Commits move mtime and ctime. */
	vc_id a1 = put("a", "1");
	CHECK_RC(vc_lookup(S, "a", &e1), 0);
	put("a", "2");
	CHECK_RC(vc_lookup(S, "a", &e2), 0);
	CHECK(e2.mtime_ns >= e1.mtime_ns && e2.mtime_ns == e2.head.created_ns);
	/* A tombstone is revived by a commit: journal commit from 0. */
	CHECK_RC(vc_delete(S, "a", &ACTOR), 0);
	vc_id a3 = put("a", "3");
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 1);
	CHECK_EQ(jl.j[0].action, VC_ACT_COMMIT);
	CHECK_EQ(jl.j[0].from_version, 0);
	CHECK_EQ(jl.j[0].to_version, a3);
	CHECK_EQ(versions_of("a")->n, 3);
	CHECK(a3 > a1);
	/* A kind change after a delete is fine. */
	CHECK_RC(vc_delete(S, "f", &ACTOR), 0);
	mkdir_("f");
	/* same_content_as reuses the blob. */
	vc_commit_req r = { .path = "copy", .kind = VC_FILE, .op = VC_OP_IMPORT, .mode = 0600,
			    .same_content_as = a3, .source = a3, .actor = &ACTOR };
	vc_id c;
	CHECK_RC(vc_commit(S, &r, &c, NULL), 0);
	content_is("copy", "3");
	r.same_content_as = 1; /* the root directory */
	r.path = "copy2";
	CHECK_RC(vc_commit(S, &r, &c, NULL), -EISDIR);
	close_store();
	/* Empty files have a (shared, empty) blob. */
	S = open_store(VC_OPEN_WRITER);
	put("e1", "");
	put("e2", "");
	content_is("e2", "");
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE size = 0"), 1);
}

static void t_rename_history(void)
{
	struct vlist *l;
	vc_entry e;

	new_store();
	vc_id a1 = put("a", "A1");
	vc_id b1 = put("b", "B1");
	vc_id b2 = put("b", "B2");
	CHECK_RC(vc_rename(S, "a", "b", 0, &ACTOR), 0);
	content_is("b", "A1");
	CHECK_RC(vc_lookup(S, "a", &e), -ENOENT);
	l = versions_of("b");
	CHECK_EQ(l->n, 3);
	CHECK_EQ(l->v[0].op, VC_OP_RENAME);
	CHECK_EQ(l->v[0].source, a1);
	CHECK_EQ(l->v[1].id, b2);
	CHECK_EQ(l->v[2].id, b1);
	/* a keeps its history too. */
	l = versions_of("a");
	CHECK_EQ(l->n, 1);
	CHECK_EQ(l->v[0].id, a1);
	/* Undo the replacement of b. */
	CHECK_RC(vc_activate(S, b2, "b", &ACTOR), 0);
	content_is("b", "B2");
	/* NOREPLACE, missing source, same path. */
	put("c", "C");
	CHECK_RC(vc_rename(S, "c", "b", VC_RENAME_NOREPLACE, &ACTOR), -EEXIST);
	CHECK_RC(vc_rename(S, "a", "z", 0, &ACTOR), -ENOENT);
	CHECK_RC(vc_rename(S, "c", "c", 0, &ACTOR), 0);
	CHECK_RC(vc_rename(S, "", "x", 0, &ACTOR), -EBUSY);
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM journal WHERE action = 'rename'"), 2);
	CHECK_EQ(raw_int("SELECT count(*) FROM journal j JOIN paths p ON p.id = j.path_id"
			 " WHERE action = 'rename' AND p.path = 'a' AND to_version IS NULL"), 1);
}

static void t_rename_dir(void)
{
	struct names n = { .n = 0 };
	struct vlist *l;
	vc_entry e;

	new_store();
	mkdir_("d");
	vc_id x = put("d/x", "X");
	mkdir_("d/sub");
	put("d/sub/y", "Y");
	put("d-sibling", "S");
	put("f", "F");
	mkdir_("full");
	put("full/z", "Z");
	mkdir_("empty");

	CHECK_RC(vc_rename(S, "d", "d/sub/in", 0, &ACTOR), -EINVAL);
	CHECK_RC(vc_rename(S, "d", "full", 0, &ACTOR), -ENOTEMPTY);
	CHECK_RC(vc_rename(S, "d", "f", 0, &ACTOR), -ENOTDIR);
	CHECK_RC(vc_rename(S, "f", "empty", 0, &ACTOR), -EISDIR);
	CHECK_RC(vc_rename(S, "f", "nodir/f", 0, &ACTOR), -ENOENT);

	CHECK_RC(vc_rename(S, "d", "e", 0, &ACTOR), 0);
	content_is("e/x", "X");
	content_is("e/sub/y", "Y");
	content_is("d-sibling", "S");
	CHECK_RC(vc_lookup(S, "d", &e), -ENOENT);
	CHECK_RC(vc_lookup(S, "d/x", &e), -ENOENT);
	CHECK_RC(vc_lookup(S, "d/sub/y", &e), -ENOENT);
	l = versions_of("e/x");
	CHECK_EQ(l->n, 1);
	CHECK_EQ(l->v[0].op, VC_OP_RENAME);
	CHECK_EQ(l->v[0].source, x);
	CHECK_RC(vc_list_dir(S, "e", add_name_only, &n), 0);
	CHECK_STR(n.buf, "sub x");
	/* A directory over an empty directory is allowed. */
	CHECK_RC(vc_rename(S, "e", "empty", 0, &ACTOR), 0);
	content_is("empty/sub/y", "Y");
	FSCK_CLEAN();
	n = (struct names){ .n = 0 };
	CHECK_RC(vc_list_paths(S, 0, add_name_only, &n), 0);
	CHECK_STR(n.buf, " d-sibling empty empty/sub empty/sub/y empty/x f full full/z");
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM versions WHERE op = 'rename'"), 8);
}

static void t_delete_restore(void)
{
	vc_entry e;

	new_store();
	vc_id a = put("a", "keep me");
	CHECK_RC(vc_delete(S, "a", &ACTOR), 0);
	CHECK_RC(vc_lookup(S, "a", &e), -ENOENT);
	CHECK_RC(vc_delete(S, "a", &ACTOR), -ENOENT);
	CHECK_EQ(versions_of("a")->n, 1);
	CHECK_RC(vc_activate(S, a, "a", &ACTOR), 0);
	content_is("a", "keep me");
	/* Restoring a file under deleted directories revives them. */
	mkdir_("d");
	mkdir_("d/e");
	vc_id f = put("d/e/f", "deep");
	CHECK_RC(vc_delete(S, "d/e/f", &ACTOR), 0);
	CHECK_RC(vc_delete(S, "d/e", &ACTOR), 0);
	CHECK_RC(vc_delete(S, "d", &ACTOR), 0);
	CHECK_RC(vc_lookup(S, "d", &e), -ENOENT);
	CHECK_RC(vc_activate(S, f, "d/e/f", &ACTOR), 0);
	content_is("d/e/f", "deep");
	CHECK_RC(vc_lookup(S, "d/e", &e), 0);
	CHECK_EQ(e.head.kind, VC_DIR);
	FSCK_CLEAN();
	/* list_paths with deleted paths: head.id 0. */
	struct names n = { .n = 0 };
	CHECK_RC(vc_delete(S, "a", &ACTOR), 0);
	CHECK_RC(vc_list_paths(S, 1, add_name, &n), 0);
	CHECK(strstr(n.buf, " a=0 "));
	close_store();
}

static void t_rmdir_nonempty(void)
{
	vc_entry e;

	new_store();
	mkdir_("d");
	put("d/f", "x");
	CHECK_RC(vc_delete(S, "d", &ACTOR), -ENOTEMPTY);
	CHECK(strstr(vc_errmsg(S), "not empty"));
	CHECK_RC(vc_lookup(S, "d", &e), 0);
	CHECK_RC(vc_delete(S, "", &ACTOR), -EBUSY);
	CHECK_RC(vc_delete(S, "missing", &ACTOR), -ENOENT);
	CHECK_RC(vc_delete(S, "d/f", &ACTOR), 0);
	CHECK_RC(vc_delete(S, "d", &ACTOR), 0);
	CHECK_RC(vc_list_dir(S, "d", add_name, &(struct names){ .n = 0 }), -ENOENT);
	CHECK_RC(vc_list_dir(S, "missing", add_name, &(struct names){ .n = 0 }), -ENOENT);
	put("file", "x");
	CHECK_RC(vc_list_dir(S, "file", add_name, &(struct names){ .n = 0 }), -ENOTDIR);
	close_store();
}

static int check_times(const char *name, const vc_entry *e, void *ctx)
{
	(void)ctx;
	if (e->mtime_ns != e->head.created_ns || e->atime_ns != e->head.created_ns ||
	    e->head.created_ns < 1000000000000000000LL)
		fail(__FILE__, __LINE__, "%s: times %lld %lld, created %lld", name,
		     (long long)e->atime_ns, (long long)e->mtime_ns, (long long)e->head.created_ns);
	return 0;
}

static void t_tree_at(void)
{
	struct names n;
	char want[256];

	new_store();
	vc_id s1 = last_seq();
	vc_id a1 = put("a", "1");
	vc_id s2 = last_seq();
	mkdir_("d");
	vc_id b1 = put("d/b", "b");
	vc_id s3 = last_seq();
	vc_id a2 = put("a", "2");
	CHECK_RC(vc_delete(S, "d/b", &ACTOR), 0);
	vc_id s4 = last_seq();
	vc_id d = head_of("d");

	CHECK_STR(tree(0, &n), "");
	CHECK_STR(tree(s1, &n), "=1");
	snprintf(want, sizeof want, "=1 a=%lld", (long long)a1);
	CHECK_STR(tree(s2, &n), want);
	snprintf(want, sizeof want, "=1 a=%lld d=%lld d/b=%lld", (long long)a1, (long long)d,
		 (long long)b1);
	CHECK_STR(tree(s3, &n), want);
	snprintf(want, sizeof want, "=1 a=%lld d=%lld", (long long)a2, (long long)d);
	CHECK_STR(tree(s4, &n), want);
	CHECK_STR(tree(s4, &n), live(&(struct names){ .n = 0 }));
	CHECK_RC(vc_tree_at(S, s4 + 1, add_name, &n), -ENOENT);
	/* Times of tree_at entries are the versions' creation times. */
	CHECK_RC(vc_set_times(S, "a", 5, 5), 0);
	CHECK_RC(vc_tree_at(S, s4, check_times, NULL), 0);
	close_store();
}

static void t_seq_at_time(void)
{
	vc_entry e;
	vc_id seq;

	new_store();
	put("a", "1");
	CHECK_RC(vc_lookup(S, "a", &e), 0);
	vc_id s1 = last_seq();
	struct timespec ts = { 0, 2000000 };
	nanosleep(&ts, NULL);
	put("a", "2");
	CHECK_RC(vc_seq_at_time(S, e.head.created_ns, &seq), 0);
	CHECK_EQ(seq, s1);
	CHECK_RC(vc_seq_at_time(S, 1, &seq), 0);
	CHECK_EQ(seq, 0);
	CHECK_RC(vc_seq_at_time(S, INT64_MAX, &seq), 0);
	CHECK_EQ(seq, s1 + 1);
	close_store();
}

static void t_restore(void)
{
	struct names then, now;
	struct jlist jl = { 0 };
	vc_journal_filter f = { .uid = -1 };
	vc_entry e;

	new_store();
	put("a", "1");
	mkdir_("d");
	put("d/b", "b");
	put("f", "file");
	vc_id seq = last_seq();
	tree(seq, &then);

	put("a", "2");
	CHECK_RC(vc_delete(S, "d/b", &ACTOR), 0);
	CHECK_RC(vc_delete(S, "d", &ACTOR), 0);
	put("c", "new");
	CHECK_RC(vc_delete(S, "f", &ACTOR), 0);
	mkdir_("f");
	put("f/inner", "i");
	vc_id before = last_seq();

	CHECK_RC(vc_restore(S, seq, &ACTOR), 0);
	content_is("a", "1");
	content_is("d/b", "b");
	content_is("f", "file");
	CHECK_RC(vc_lookup(S, "c", &e), -ENOENT);
	CHECK_RC(vc_lookup(S, "f/inner", &e), -ENOENT);
	CHECK_STR(live(&now), then.buf);
	/* One journal entry per moved path, all "restore". */
	f.after_seq = before;
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 6); /* a, d, d/b, c, f, f/inner */
	for (int i = 0; i < 6; i++)
		CHECK_EQ(jl.j[i].action, VC_ACT_RESTORE);
	/* Restoring to the current state changes nothing. */
	vc_id after = last_seq();
	CHECK_RC(vc_restore(S, after, &ACTOR), 0);
	CHECK_EQ(last_seq(), after);
	CHECK_RC(vc_restore(S, after + 1, &ACTOR), -ENOENT);
	CHECK_RC(vc_restore(S, 0, &ACTOR), -EINVAL);
	FSCK_CLEAN();
	close_store();
}

static void t_link(void)
{
	vc_version v;
	vc_id l;

	new_store();
	vc_id a = put("a", "shared");
	mkdir_("d");
	CHECK_RC(vc_link(S, "a", "b", &ACTOR, &l), 0);
	CHECK_RC(vc_get_version(S, l, &v), 0);
	CHECK_EQ(v.op, VC_OP_LINK);
	CHECK_EQ(v.source, a);
	CHECK_STR(v.path, "b");
	content_is("b", "shared");
	put("b", "changed");
	content_is("a", "shared");
	content_is("b", "changed");
	put("a", "a changed");
	content_is("b", "changed");
	CHECK_RC(vc_link(S, "a", "b", &ACTOR, &l), -EEXIST);
	CHECK_EQ(l, 0);
	CHECK_RC(vc_link(S, "d", "d2", &ACTOR, &l), -EPERM);
	CHECK_RC(vc_link(S, "missing", "x", &ACTOR, &l), -ENOENT);
	CHECK_RC(vc_link(S, "a", "nodir/x", &ACTOR, &l), -ENOENT);
	close_store();
	/* "shared", "changed", "a changed" */
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs"), 3);
}

static void t_set_times(void)
{
	vc_entry e;

	new_store();
	put("a", "x");
	vc_id seq = last_seq();
	CHECK_RC(vc_set_times(S, "a", 111, 222), 0);
	CHECK_RC(vc_lookup(S, "a", &e), 0);
	CHECK_EQ(e.atime_ns, 111);
	CHECK_EQ(e.mtime_ns, 222);
	CHECK_RC(vc_set_times(S, "a", -1, 333), 0);
	CHECK_RC(vc_lookup(S, "a", &e), 0);
	CHECK_EQ(e.atime_ns, 111);
	CHECK_EQ(e.mtime_ns, 333);
	CHECK_EQ(last_seq(), seq);
	CHECK_EQ(versions_of("a")->n, 1);
	CHECK_RC(vc_set_times(S, "missing", 1, 1), -ENOENT);
	close_store();
}

static void t_path_check(void)
{
	char name[300], path[5000];
	vc_entry e;

	CHECK_RC(vc_path_check(""), 0);
	CHECK_RC(vc_path_check("a"), 0);
	CHECK_RC(vc_path_check("conf.d/10-db.json"), 0);
	CHECK_RC(vc_path_check(".hidden/..x/x.."), 0);
	CHECK_RC(vc_path_check("/a"), -EINVAL);
	CHECK_RC(vc_path_check("a/"), -EINVAL);
	CHECK_RC(vc_path_check("a//b"), -EINVAL);
	CHECK_RC(vc_path_check("."), -EINVAL);
	CHECK_RC(vc_path_check(".."), -EINVAL);
	CHECK_RC(vc_path_check("a/../b"), -EINVAL);
	CHECK_RC(vc_path_check("a/./b"), -EINVAL);
	CHECK_RC(vc_path_check("a/.."), -EINVAL);
	CHECK_RC(vc_path_check(NULL), -EINVAL);
	memset(name, 'n', 255);
	name[255] = 0;
	CHECK_RC(vc_path_check(name), 0);
	name[255] = 'n';
	name[256] = 0;
	CHECK_RC(vc_path_check(name), -ENAMETOOLONG);
	/* 4095 bytes: 39 components of 100 + "/" ... */
	path[0] = 0;
	while (strlen(path) + 101 <= 4095)
		strcat(path, strlen(path) ? "/ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
					  : "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	while (strlen(path) < 4095)
		strcat(path, strlen(path) % 2 ? "/" : "x");
	if (path[4094] == '/')
		path[4094] = 'x';
	CHECK_EQ(strlen(path), 4095);
	CHECK_RC(vc_path_check(path), 0);
	strcat(path, "x");
	CHECK_RC(vc_path_check(path), -ENAMETOOLONG);

	new_store();
	CHECK_RC(commit_full("a/../b", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL),
		 -EINVAL);
	CHECK(vc_errmsg(S)[0]);
	CHECK_RC(commit_full(name, VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL),
		 -ENAMETOOLONG);
	CHECK_RC(vc_lookup(S, "x//y", &e), -EINVAL);
	CHECK_RC(vc_delete(S, "/a", &ACTOR), -EINVAL);
	CHECK_RC(vc_rename(S, "a", "..", 0, &ACTOR), -EINVAL);
	CHECK_RC(vc_link(S, "a", "b/", &ACTOR, NULL), -EINVAL);
	CHECK_RC(vc_activate(S, 1, "./", &ACTOR), -EINVAL);
	CHECK_RC(vc_set_times(S, "a/.", 1, 1), -EINVAL);
	CHECK_RC(vc_list_dir(S, "//", add_name, &(struct names){ .n = 0 }), -EINVAL);
	close_store();
}

static void check_mode(const char *file, mode_t want)
{
	struct stat st;

	CHECK(stat(file, &st) == 0);
	if ((st.st_mode & 07777) != want)
		fail(__FILE__, __LINE__, "%s has mode %o, want %o", file,
		     (unsigned)(st.st_mode & 07777), (unsigned)want);
}

static void t_file_mode(void)
{
	char wal[160];
	mode_t old = umask(0);

	new_store();
	put("a", "x");
	check_mode(dbfile, 0600);
	snprintf(wal, sizeof wal, "%s-wal", dbfile);
	check_mode(wal, 0600);
	close_store();
	/* A umask that removes owner bits does not matter either. */
	CHECK(unlink(dbfile) == 0);
	umask(0277);
	new_store();
	check_mode(dbfile, 0600);
	close_store();
	umask(old);
}

/* Writes len bytes of data to a fresh file. */
static void write_file(const char *file, const void *data, size_t len)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void t_open_errors(void)
{
	char file[256], big[20000];
	const char *msg;
	struct stat st;

	setvbuf(stderr, NULL, _IONBF, 0);
	/* Not a database at all. */
	snprintf(file, sizeof file, "%s/text.conf", dir);
	memset(big, 'x', sizeof big);
	write_file(file, big, sizeof big);
	msg = open_fails(file, VC_OPEN_CREATE | VC_OPEN_WRITER, -EINVAL);
	CHECK(strstr(msg, "not a verconf store"));
	msg = open_fails(file, VC_OPEN_READONLY, -EINVAL);
	CHECK(strstr(msg, "not a verconf store"));
	/* Somebody else's SQLite database: refused, and left as it was. */
	snprintf(dbfile, sizeof dbfile, "%s/other.db", dir);
	{
		sqlite3 *db;

		CHECK(sqlite3_open(dbfile, &db) == SQLITE_OK);
		CHECK(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL) == SQLITE_OK);
		sqlite3_close(db);
	}
	msg = open_fails(dbfile, VC_OPEN_CREATE | VC_OPEN_WRITER, -EINVAL);
	CHECK(strstr(msg, "not a verconf store"));
	CHECK_EQ(raw_int("SELECT journal_mode = 'delete' FROM pragma_journal_mode"), 1);
	/* A newer schema. */
	snprintf(dbfile, sizeof dbfile, "%s/newer.db", dir);
	new_store();
	close_store();
	raw_ok("PRAGMA user_version = 2");
	msg = open_fails(dbfile, VC_OPEN_WRITER, -EPROTONOSUPPORT);
	CHECK(strstr(msg, "newer"));
	open_fails(dbfile, VC_OPEN_READONLY, -EPROTONOSUPPORT);
	/* Truncated: a store with some pages cut off. */
	snprintf(dbfile, sizeof dbfile, "%s/truncated.db", dir);
	new_store();
	/* Random letters: blobs that compress little, so the file is big. */
	for (size_t i = 0, x = 1; i < sizeof big; i++, x = x * 6364136223846793005u + 1)
		big[i] = (char)('a' + (x >> 33) % 26);
	for (int i = 0; i < 30; i++) {
		char path[16];

		snprintf(path, sizeof path, "f%d", i);
		big[0] = (char)('a' + i);
		big[sizeof big - 1] = 0;
		put(path, big);
	}
	close_store();
	CHECK(stat(dbfile, &st) == 0 && st.st_size > 100000);
	CHECK(truncate(dbfile, st.st_size / 2) == 0);
	msg = open_fails(dbfile, VC_OPEN_WRITER, -EIO);
	CHECK(strstr(msg, "corrupt"));
	open_fails(dbfile, VC_OPEN_READONLY, -EIO);
	/* Garbage over the schema page. */
	{
		int fd = open(dbfile, O_WRONLY);

		CHECK(fd >= 0);
		CHECK(pwrite(fd, big, 4096, 100) == 4096);
		close(fd);
	}
	msg = open_fails(dbfile, VC_OPEN_WRITER, -EIO);
	/* Missing file, no CREATE; missing directory. */
	snprintf(file, sizeof file, "%s/missing.db", dir);
	open_fails(file, VC_OPEN_WRITER, -ENOENT);
	open_fails(file, VC_OPEN_READONLY, -ENOENT);
	snprintf(file, sizeof file, "%s/no/such/dir.db", dir);
	msg = open_fails(file, VC_OPEN_CREATE | VC_OPEN_WRITER, -ENOENT);
	CHECK(strstr(msg, "cannot create"));
	/* Unwritable location (root bypasses permissions). */
	if (geteuid() != 0) {
		char ro[128];

		snprintf(ro, sizeof ro, "%s/ro", dir);
		CHECK(mkdir(ro, 0500) == 0);
		snprintf(file, sizeof file, "%s/store.db", ro);
		open_fails(file, VC_OPEN_CREATE | VC_OPEN_WRITER, -EACCES);
		chmod(ro, 0700);
	}
	/* Invalid flag combination. */
	open_fails(file, VC_OPEN_READONLY | VC_OPEN_WRITER, -EINVAL);
	/* A zero-length file: initialised with CREATE, refused without. */
	snprintf(dbfile, sizeof dbfile, "%s/empty.db", dir);
	write_file(dbfile, "", 0);
	CHECK(chmod(dbfile, 0644) == 0);
	msg = open_fails(dbfile, VC_OPEN_WRITER, -EINVAL);
	CHECK(strstr(msg, "not a verconf store"));
	new_store();
	CHECK_EQ(head_of(""), 1);
	close_store();
	CHECK(stat(dbfile, &st) == 0 && (st.st_mode & 0777) == 0600);
}

/* A pipe-driven child: parent and child wait for each other's byte. */
static void wait_byte(int fd)
{
	char c;

	CHECK(read(fd, &c, 1) == 1);
}

static void t_writer_busy(void)
{
	int up[2], down[2], status;
	vc_store *r, *w;
	char err[512];
	vc_entry e;
	pid_t pid;

	new_store();
	close_store();
	CHECK(pipe(up) == 0 && pipe(down) == 0);
	/* The writer is a child process: two handles in one process would
	 * share POSIX locks (see vc_close), so this is how it runs for real. */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		S = open_store(VC_OPEN_WRITER);
		put("served", "by the daemon");
		CHECK(write(up[1], "r", 1) == 1);
		wait_byte(down[0]);
		put("served", "second");
		CHECK(write(up[1], "r", 1) == 1);
		wait_byte(down[0]);
		vc_close(S);
		_exit(0);
	}
	wait_byte(up[0]);
	CHECK_RC(vc_open(dbfile, VC_OPEN_WRITER, &ACTOR, &w, err, sizeof err), -EBUSY);
	CHECK(w == NULL && strstr(err, "another writer"));
	CHECK_RC(vc_open(dbfile, VC_OPEN_CREATE | VC_OPEN_WRITER, &ACTOR, &w, err, sizeof err),
		 -EBUSY);
	/* A reader works while the writer serves, and sees its commits. */
	CHECK_RC(vc_open(dbfile, VC_OPEN_READONLY, &ACTOR, &r, err, sizeof err), 0);
	S = r;
	content_is("served", "by the daemon");
	CHECK(write(down[1], "g", 1) == 1);
	wait_byte(up[0]);
	content_is("served", "second");
	CHECK_RC(commit_full("x", VC_FILE, VC_OP_CREATE, "x", 0644, VC_ACCEPTED, NULL, NULL), -EROFS);
	CHECK_RC(vc_delete(S, "served", &ACTOR), -EROFS);
	CHECK(strstr(vc_errmsg(S), "read-only"));
	FSCK_CLEAN();
	CHECK(write(down[1], "g", 1) == 1);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_RC(vc_lookup(S, "served", &e), 0);
	close_store();
	/* The lock went with the writer. */
	S = open_store(VC_OPEN_WRITER);
	close_store();
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child of t_crash: commit forever, report each id once durable. */
static void __attribute__((noreturn)) crash_child(int fd)
{
	char path[32], data[64];

	S = open_store(VC_OPEN_WRITER);
	for (int i = 0; i < 1000000; i++) {
		vc_id id;

		snprintf(path, sizeof path, i % 3 ? "f" : "n%d", i);
		snprintf(data, sizeof data, "content %d", i);
		if (commit_full(path, VC_FILE, VC_OP_WRITE, data, 0644, VC_ACCEPTED, &id, NULL))
			_exit(2);
		if (write(fd, &id, sizeof id) != sizeof id)
			_exit(3);
	}
	_exit(0);
}

static void t_crash(void)
{
	vc_id ids[100000], max = 0;
	size_t n = 0, want;
	int p[2], status;
	int64_t deadline;
	pid_t pid;

	new_store();
	close_store();
	srand((unsigned)(time(NULL) ^ getpid()));
	want = 5 + (size_t)(rand() % 200);
	CHECK(pipe(p) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		crash_child(p[1]);
	}
	close(p[1]);
	deadline = mono_ms() + 3000;
	while (n < want && mono_ms() < deadline) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };

		if (poll(&pfd, 1, 100) > 0 && read(p[0], &ids[n], sizeof ids[n]) == sizeof ids[n])
			n++;
	}
	/* A random moment within the next commit or so. */
	usleep((useconds_t)(rand() % 3000));
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFSIGNALED(status));
	while (n < sizeof ids / sizeof ids[0] && read(p[0], &ids[n], sizeof ids[n]) == sizeof ids[n])
		n++;
	close(p[0]);
	fprintf(stderr, "child killed after %zu reported commits (target %zu)\n", n, want);
	CHECK(n >= 1);

	S = open_store(VC_OPEN_WRITER);
	FSCK_CLEAN();
	/* Every reported commit is there, with its content, and is (or
	 * precedes) its path's head. */
	for (size_t i = 0; i < n; i++) {
		char path[32], data[64];
		vc_version v;

		snprintf(path, sizeof path, i % 3 ? "f" : "n%zu", i);
		snprintf(data, sizeof data, "content %zu", i);
		CHECK_RC(vc_get_version(S, ids[i], &v), 0);
		CHECK_STR(v.path, path);
		CHECK(i == 0 || ids[i] > ids[i - 1]);
		CHECK(head_of(path) >= ids[i]);
		if (i % 3 == 0)
			CHECK_EQ(head_of(path), ids[i]);
		/* This version's bytes (content_is reads the head). */
		{
			void *buf;
			size_t len;

			CHECK_RC(vc_read_content(S, ids[i], &buf, &len), 0);
			CHECK(len == strlen(data) && !memcmp(buf, data, len));
			free(buf);
		}
		max = ids[i];
	}
	CHECK(last_seq() >= (vc_id)n + 1);
	CHECK(max > 1);
	close_store();
}

/*
 * fdatasync, counted: this definition takes the place of libc's for the
 * store and for SQLite.  syncs_of_wal counts calls on the store's -wal
 * file; sync_error makes the next call fail with that errno.
 */
static int syncs, syncs_of_wal, sync_error;

int fdatasync(int fd)
{
	char link[64], target[256];
	ssize_t n;

	__atomic_add_fetch(&syncs, 1, __ATOMIC_SEQ_CST);
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof target - 1);
	if (n > 4 && !memcmp(target + n - 4, "-wal", 4))
		__atomic_add_fetch(&syncs_of_wal, 1, __ATOMIC_SEQ_CST);
	if (sync_error) {
		errno = sync_error;
		sync_error = 0;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static void *sync_forever(void *arg)
{
	volatile int *stop = arg;

	while (!*stop)
		if (vc_sync(S, vc_change_mark(S)))
			return (void *)1;
	return NULL;
}

/* VC_OPEN_SYNC_DEFERRED: commits do not sync; vc_sync syncs the log once
 * for every change up to its mark, and again only after new changes. */
static void t_deferred_sync(void)
{
	uint64_t mark;
	int before;

	/* Without the flag: SQLite syncs inside the commit (FULL), vc_sync
	 * has nothing to do. */
	new_store();
	before = syncs;
	put("full", "1");
	CHECK(syncs > before);
	before = syncs;
	CHECK_RC(vc_sync(S, vc_change_mark(S)), 0);
	CHECK_EQ(syncs, before);
	close_store();

	/* SQLite itself syncs a log it starts anew (its header): the first
	 * commit after the open may sync, later ones must not. */
	S = open_store(VC_OPEN_WRITER | VC_OPEN_SYNC_DEFERRED);
	put("warm-up", "0");
	CHECK_RC(vc_sync(S, vc_change_mark(S)), 0);
	syncs = syncs_of_wal = 0;
	mark = vc_change_mark(S);
	put("a", "1");
	put("b", "2");
	CHECK_EQ(syncs, 0);
	CHECK_EQ(vc_change_mark(S), mark + 2);
	/* One sync covers both changes; nothing new, nothing to do. */
	CHECK_RC(vc_sync(S, vc_change_mark(S)), 0);
	CHECK_EQ(syncs, 1);
	CHECK_EQ(syncs_of_wal, 1);
	CHECK_RC(vc_sync(S, vc_change_mark(S)), 0);
	CHECK_RC(vc_sync(S, mark + 1), 0);
	CHECK_EQ(syncs, 1);
	/* Reads change nothing. */
	content_is("a", "1");
	CHECK_EQ(vc_change_mark(S), mark + 2);
	/* A failed commit is not a change. */
	mark = vc_change_mark(S);
	CHECK(commit_full("a/x", VC_FILE, VC_OP_WRITE, "x", 0644, VC_ACCEPTED, NULL, NULL) < 0);
	CHECK_EQ(vc_change_mark(S), mark);

	/* vc_sync on another thread while this one commits. */
	{
		pthread_t t;
		volatile int stop = 0;
		void *res;
		char data[32];

		CHECK(pthread_create(&t, NULL, sync_forever, (void *)&stop) == 0);
		for (int i = 0; i < 300; i++) {
			snprintf(data, sizeof data, "v%d", i);
			put(i % 2 ? "a" : "b", data);
		}
		stop = 1;
		CHECK(pthread_join(t, &res) == 0);
		CHECK(res == NULL);
	}
	CHECK_RC(vc_sync(S, vc_change_mark(S)), 0);
	content_is("a", "v299");
	content_is("b", "v298");
	FSCK_CLEAN();
	/* A failure is final (ENOSPC as EIO): the disk may have dropped
	 * what it failed to write, and a later fdatasync would not say so. */
	put("c", "1");
	sync_error = ENOSPC;
	CHECK_RC(vc_sync(S, vc_change_mark(S)), -ENOSPC);
	before = syncs;
	CHECK_RC(vc_sync(S, vc_change_mark(S)), -ENOSPC);
	put("c", "2");
	CHECK_RC(vc_sync(S, vc_change_mark(S)), -ENOSPC);
	CHECK_EQ(syncs, before);
	close_store();
	/* What the deferred handle committed is there for the next one
	 * (here nothing was lost: the error was the test's). */
	S = open_store(VC_OPEN_WRITER | VC_OPEN_SYNC_DEFERRED);
	content_is("a", "v299");
	content_is("c", "2");
	put("c", "3");
	CHECK_RC(vc_sync(S, vc_change_mark(S)), 0);
	/* A log removed (or replaced) under the handle took its changes
	 * with it: EIO, for good, even once a new log is there. */
	{
		char wal[160];

		snprintf(wal, sizeof wal, "%s-wal", dbfile);
		put("c", "4");
		CHECK(unlink(wal) == 0);
		CHECK_RC(vc_sync(S, vc_change_mark(S)), -EIO);
		put("c", "5");
		CHECK_RC(vc_sync(S, vc_change_mark(S)), -EIO);
	}
	close_store();
}

static void t_fsck_corrupt(void)
{
	struct lines l = { 0 };

	new_store();
	put("a", "precious");
	put("b", "other");
	CHECK_EQ(vc_fsck(S, add_line, &l), 0);
	CHECK_EQ(l.n, 0);
	close_store();
	raw_ok("DROP TRIGGER blobs_no_update;"
	       " UPDATE blobs SET data = CAST('PRECIOUS' AS BLOB) WHERE size = 8");
	S = open_store(VC_OPEN_WRITER);
	int n = vc_fsck(S, add_line, &l);
	fprintf(stderr, "fsck found %d problems:\n%s", n, l.text);
	CHECK_EQ(n, 2);
	CHECK_EQ(l.n, 2);
	CHECK(strstr(l.text, "SHA-256"));
	CHECK(strstr(l.text, "trigger blobs_no_update is missing"));
	close_store();
	/* Broken references are found too. */
	raw_ok("DROP TRIGGER versions_no_update; UPDATE versions SET blob_id = 999 WHERE size = 5");
	S = open_store(VC_OPEN_READONLY);
	memset(&l, 0, sizeof l);
	n = vc_fsck(S, add_line, &l);
	fprintf(stderr, "fsck found %d problems:\n%s", n, l.text);
	CHECK(strstr(l.text, "blob 999 does not exist"));
	CHECK_EQ(n, 4);
	close_store();
}

struct stopper {
	int seen;
};

static int stop_at_second(const char *name, const vc_entry *e, void *ctx)
{
	struct stopper *st = ctx;
	vc_entry inner;

	(void)name;
	(void)e;
	/* Calling back into the store from a callback is allowed. */
	CHECK_RC(vc_lookup(S, "", &inner), 0);
	CHECK_RC(vc_list_dir(S, "", add_name_only, &(struct names){ .n = 0 }), 0);
	return ++st->seen == 2 ? 42 : 0;
}

static void t_listing(void)
{
	struct names n = { .n = 0 };
	struct stopper st = { 0 };
	struct jlist jl = { 0 };
	vc_journal_filter f = { .uid = -1, .oldest_first = 1, .limit = 2 };
	vc_actor other = { .uid = 7, .gid = 7, .pid = 1, .comm = "other" };
	vc_id seq;

	new_store();
	put("b", "b");
	put("a", "a");
	mkdir_("d");
	put("d/z", "z");
	put("d/y", "y");
	put("c", "c");
	CHECK_RC(vc_delete(S, "c", &other), 0);
	CHECK_RC(vc_list_dir(S, "", add_name_only, &n), 0);
	CHECK_STR(n.buf, "a b d");
	n = (struct names){ .n = 0 };
	CHECK_RC(vc_list_dir(S, "d", add_name_only, &n), 0);
	CHECK_STR(n.buf, "y z");
	CHECK_EQ(vc_list_dir(S, "", stop_at_second, &st), 42);
	CHECK_EQ(st.seen, 2);
	/* Journal filters. */
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 2);
	CHECK_EQ(jl.j[0].seq, 1);
	CHECK_EQ(jl.j[1].seq, 2);
	CHECK_STR(jl.j[1].path, "b");
	memset(&jl, 0, sizeof jl);
	f = (vc_journal_filter){ .uid = 7 };
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 1);
	CHECK_EQ(jl.j[0].action, VC_ACT_DELETE);
	CHECK_STR(jl.j[0].actor.comm, "other");
	memset(&jl, 0, sizeof jl);
	f = (vc_journal_filter){ .uid = -1, .path = "d/y" };
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 1);
	seq = last_seq();
	memset(&jl, 0, sizeof jl);
	f = (vc_journal_filter){ .uid = -1, .after_seq = seq - 2 };
	CHECK_RC(vc_list_journal(S, &f, add_journal, &jl), 0);
	CHECK_EQ(jl.n, 2);
	CHECK_EQ(jl.j[0].seq, seq); /* newest first */
	CHECK_RC(vc_list_versions(S, "never", 0, add_version, &(struct vlist){ 0 }), -ENOENT);
	struct vlist vl = { 0 };
	put("a", "a2");
	put("a", "a3");
	CHECK_RC(vc_list_versions(S, "a", 2, add_version, &vl), 0);
	CHECK_EQ(vl.n, 2);
	CHECK(vl.v[0].id > vl.v[1].id);
	/* Names. */
	CHECK_STR(vc_op_name(VC_OP_MKDIR), "mkdir");
	CHECK_STR(vc_action_name(VC_ACT_RESTORE), "restore");
	CHECK_STR(vc_kind_name(VC_SYMLINK), "symlink");
	close_store();
}

/* The hot read paths are single indexed queries. */
static void t_query_plans(void)
{
	static const char *const sql[] = {
		"EXPLAIN QUERY PLAN SELECT p.id FROM paths p JOIN versions v ON v.id = p.head"
		" LEFT JOIN blobs b ON b.id = v.blob_id WHERE p.parent = 1 AND p.head IS NOT NULL"
		" ORDER BY p.name",
		"EXPLAIN QUERY PLAN SELECT p.id FROM paths p JOIN versions v ON v.id = p.head"
		" LEFT JOIN blobs b ON b.id = v.blob_id WHERE p.path = 'a'",
		"EXPLAIN QUERY PLAN SELECT v.id FROM versions v JOIN paths p ON p.id = v.path_id"
		" WHERE v.path_id = 1 ORDER BY v.id DESC LIMIT 3",
		"EXPLAIN QUERY PLAN SELECT seq FROM journal WHERE time_ns <= 5"
		" ORDER BY time_ns DESC, seq DESC LIMIT 1",
	};
	sqlite3 *db;

	new_store();
	close_store();
	db = raw_open();
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
		sqlite3_stmt *st;

		CHECK(sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) == SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 3);

			if (strstr(d, "SCAN") || strstr(d, "TEMP B-TREE"))
				fail(__FILE__, __LINE__, "%s: %s", sql[i], d);
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

/* ---- codecs: zstd keyframes and deltas --------------------------------- */

/* The benchmark's config: NKEYS settings, about 20 KiB of JSON. */
#define NKEYS 394
static size_t json_doc(char *buf, size_t cap, const long *vals)
{
	size_t n = (size_t)snprintf(buf, cap, "{\n");

	for (int k = 0; k < NKEYS; k++)
		n += (size_t)snprintf(buf + n, cap - n,
				      "  \"setting_%03d\": {\"value\": %8ld, \"unit\": \"ms\"}%s\n",
				      k, vals[k], k + 1 < NKEYS ? "," : "");
	n += (size_t)snprintf(buf + n, cap - n, "}\n");
	return n;
}

/* Version i of the history: one value changed per version. */
static void json_history_init(long *vals)
{
	for (int k = 0; k < NKEYS; k++)
		vals[k] = 1000 + k;
}

static void json_history_step(long *vals, long i)
{
	if (i)
		vals[(i * 7) % NKEYS] = i;
}

static vc_id put_bytes(const char *path, const void *data, size_t len)
{
	vc_commit_req r = {
		.path = path, .kind = VC_FILE, .op = VC_OP_WRITE, .data = data, .len = len,
		.mode = 0644, .uid = 1000, .gid = 100, .actor = &ACTOR,
	};
	vc_id id = 0;

	CHECK_RC(vc_commit(S, &r, &id, NULL), 0);
	return id;
}

static void version_is(vc_id id, const void *want, size_t wlen)
{
	void *buf;
	size_t len;

	CHECK_RC(vc_read_content(S, id, &buf, &len), 0);
	if (len != wlen || memcmp(buf, want, len))
		fail(__FILE__, __LINE__, "version %lld: %zu bytes differ from the %zu committed",
		     (long long)id, len, wlen);
	free(buf);
}

/* Every delta whose base is missing or not a keyframe. */
#define BAD_DELTAS                                                            \
	"SELECT count(*) FROM blobs b LEFT JOIN blobs k"                      \
	" ON k.id = CAST(substr(b.codec, 6) AS INTEGER)"                      \
	" WHERE b.codec GLOB 'zstd:*' AND (k.id IS NULL OR k.codec NOT IN ('raw', 'zstd'))"

/* Many versions of a changing 20 KiB JSON, with some whole rewrites, all
 * read back byte-identical, from the writer and from a fresh reader. */
static void t_zstd_roundtrip(void)
{
	enum { N = 400 };
	static char docs[N][24 << 10];
	static size_t lens[N];
	static vc_id ids[N];
	long vals[NKEYS];

	new_store();
	json_history_init(vals);
	for (long i = 0; i < N; i++) {
		json_history_step(vals, i);
		if (i % 97 == 50) /* a whole rewrite: every value changes */
			for (int k = 0; k < NKEYS; k++)
				vals[k] = vals[k] * 31 + i;
		lens[i] = json_doc(docs[i], sizeof docs[i], vals);
		ids[i] = put_bytes("config.json", docs[i], lens[i]);
		/* Read right after the commit (the keyframe cache is warm). */
		version_is(ids[i], docs[i], lens[i]);
	}
	for (long i = N; i-- > 0;)
		version_is(ids[i], docs[i], lens[i]);
	/* Small blobs stay raw; empty content too. */
	put_bytes("small", "tiny", 4);
	put_bytes("empty", "", 0);
	content_is("small", "tiny");
	content_is("empty", "");
	FSCK_CLEAN();
	close_store();
	CHECK(raw_int("SELECT count(*) FROM blobs WHERE codec = 'zstd'") >= 2);
	CHECK(raw_int("SELECT count(*) FROM blobs WHERE codec GLOB 'zstd:*'") > N / 2);
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE codec = 'raw' AND size > 63"), 0);
	CHECK_EQ(raw_int("SELECT codec FROM blobs WHERE size = 4") == -1, 0);
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE size <= 63 AND codec != 'raw'"), 0);
	CHECK_EQ(raw_int(BAD_DELTAS), 0);
	fprintf(stderr, "%d versions: %lld keyframes, %lld deltas, %lld bytes stored for %lld\n", N,
		raw_int("SELECT count(*) FROM blobs WHERE codec = 'zstd'"),
		raw_int("SELECT count(*) FROM blobs WHERE codec GLOB 'zstd:*'"),
		raw_int("SELECT sum(length(data)) FROM blobs"),
		raw_int("SELECT sum(size) FROM blobs"));
	S = open_store(VC_OPEN_READONLY);
	for (long i = 0; i < N; i++)
		version_is(ids[i], docs[i], lens[i]);
	close_store();
}

/* Deduplication is by the SHA-256 of the raw content, whatever the codec. */
static void t_zstd_dedup(void)
{
	static char a[24 << 10], b[24 << 10];
	long vals[NKEYS];
	size_t na, nb;
	vc_entry ea, ec;

	new_store();
	json_history_init(vals);
	na = json_doc(a, sizeof a, vals);
	vals[3] = 42;
	nb = json_doc(b, sizeof b, vals);
	vc_id v1 = put_bytes("a.json", a, na);
	vc_id v2 = put_bytes("a.json", b, nb);
	vc_id v3 = put_bytes("a.json", a, na); /* back to the first content */
	put_bytes("c.json", b, nb);            /* another path, same bytes */
	CHECK(v1 != v3);
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs"), 2);
	CHECK_EQ(raw_int("SELECT count(DISTINCT blob_id) FROM versions WHERE kind = 'file'"), 2);
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE codec = 'zstd'"), 1);
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE codec GLOB 'zstd:*'"), 1);
	S = open_store(VC_OPEN_WRITER);
	CHECK_RC(vc_lookup(S, "a.json", &ea), 0);
	CHECK_RC(vc_lookup(S, "c.json", &ec), 0);
	CHECK_EQ(ea.head.id, v3);
	version_is(v1, a, na);
	version_is(v2, b, nb);
	version_is(v3, a, na);
	version_is(ec.head.id, b, nb);
	FSCK_CLEAN();
	close_store();
}

/* Whatever the history (rollbacks, deletes, renames, several paths,
 * rewrites), a delta's base is a keyframe: checked in raw SQL. */
static void t_delta_base(void)
{
	static char doc[24 << 10];
	long vals[NKEYS];
	size_t n;

	new_store();
	mkdir_("d");
	json_history_init(vals);
	for (long i = 0; i < 300; i++) {
		const char *path = i % 3 ? "d/a.json" : "d/b.json";

		json_history_step(vals, i);
		if (i % 50 == 25)
			for (int k = 0; k < NKEYS; k++)
				vals[k] += 1000003 * (k + 1);
		n = json_doc(doc, sizeof doc, vals);
		put_bytes(path, doc, n);
		if (i % 40 == 39)
			CHECK_RC(vc_rollback(S, path, &ACTOR, NULL), 0);
		if (i == 150) {
			CHECK_RC(vc_delete(S, "d/b.json", &ACTOR), 0);
			CHECK_RC(vc_rename(S, "d/a.json", "d/b.json", 0, &ACTOR), 0);
		}
	}
	FSCK_CLEAN();
	close_store();
	CHECK(raw_int("SELECT count(*) FROM blobs WHERE codec GLOB 'zstd:*'") > 150);
	CHECK_EQ(raw_int(BAD_DELTAS), 0);
	/* The delta join is a rowid probe, no scan. */
	{
		sqlite3 *db = raw_open();
		sqlite3_stmt *st;

		CHECK(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT b.data, k.data FROM versions v"
					 " LEFT JOIN blobs b ON b.id = v.blob_id LEFT JOIN blobs k"
					 " ON k.id = CASE WHEN b.codec GLOB 'zstd:*' THEN"
					 " CAST(substr(b.codec, 6) AS INTEGER) END WHERE v.id = 5",
					 -1, &st, NULL) == SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 3);

			if (strstr(d, "SCAN") || strstr(d, "TEMP B-TREE"))
				fail(__FILE__, __LINE__, "content query: %s", d);
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
}

/* A damaged delta, a delta on a delta, a delta on a missing blob: fsck
 * names each, reads fail with EIO, and commits go on (new keyframe). */
static void t_delta_corrupt(void)
{
	static char doc[24 << 10];
	long vals[NKEYS];
	struct lines l = { 0 };
	void *buf;
	size_t len, n = 0;
	vc_id ids[6];
	char sql[512];

	new_store();
	json_history_init(vals);
	for (long i = 0; i < 6; i++) {
		json_history_step(vals, i);
		n = json_doc(doc, sizeof doc, vals);
		ids[i] = put_bytes("config.json", doc, n);
	}
	FSCK_CLEAN();
	close_store();
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE codec GLOB 'zstd:*'"), 5);
	long long key = raw_int("SELECT blob_id FROM versions WHERE id = 2");
	long long d1 = raw_int("SELECT blob_id FROM versions WHERE id = 3");
	long long d2 = raw_int("SELECT blob_id FROM versions WHERE id = 4");
	long long d3 = raw_int("SELECT blob_id FROM versions WHERE id = 5");
	CHECK_EQ(raw_int("SELECT codec = 'zstd' FROM blobs WHERE id = (SELECT blob_id FROM versions"
			 " WHERE id = 2)"), 1);
	CHECK(ids[0] == 2 && ids[1] == 3);
	snprintf(sql, sizeof sql,
		 "DROP TRIGGER blobs_no_update;"
		 /* the end of the delta's compressed data overwritten */
		 " UPDATE blobs SET data = substr(data, 1, length(data) - 4) || x'deadbeef'"
		 "   WHERE id = %lld;"
		 " UPDATE blobs SET codec = 'zstd:%lld' WHERE id = %lld;" /* base is a delta */
		 " UPDATE blobs SET codec = 'zstd:9999' WHERE id = %lld;", /* base missing */
		 d1, d1, d2, d3);
	raw_ok(sql);
	S = open_store(VC_OPEN_WRITER);
	int np = vc_fsck(S, add_line, &l);
	fprintf(stderr, "fsck found %d problems:\n%s", np, l.text);
	snprintf(sql, sizeof sql, "blob %lld: delta base blob %lld is not a keyframe", d2, d1);
	CHECK(strstr(l.text, sql));
	snprintf(sql, sizeof sql, "blob %lld: delta base blob 9999 is missing", d3);
	CHECK(strstr(l.text, sql));
	snprintf(sql, sizeof sql, "blob %lld: ", d1);
	CHECK(strstr(l.text, sql));
	CHECK(strstr(l.text, "trigger blobs_no_update is missing"));
	CHECK_EQ(np, 4);
	CHECK_RC(vc_read_content(S, ids[1], &buf, &len), -EIO);
	CHECK_RC(vc_read_content(S, ids[2], &buf, &len), -EIO);
	CHECK(strstr(vc_errmsg(S), "not a keyframe"));
	CHECK_RC(vc_read_content(S, ids[3], &buf, &len), -EIO);
	CHECK(strstr(vc_errmsg(S), "missing"));
	/* The keyframe and the undamaged delta read fine. */
	json_history_init(vals);
	n = json_doc(doc, sizeof doc, vals);
	version_is(ids[0], doc, n);
	for (long i = 1; i < 6; i++)
		json_history_step(vals, i);
	n = json_doc(doc, sizeof doc, vals);
	version_is(ids[5], doc, n);
	close_store();
	/* A damaged keyframe is no delta base: the next commit makes a new
	 * keyframe rather than failing. */
	snprintf(sql, sizeof sql, "UPDATE blobs SET data = x'00' WHERE id = %lld", key);
	raw_ok(sql);
	S = open_store(VC_OPEN_WRITER);
	json_history_step(vals, 6);
	n = json_doc(doc, sizeof doc, vals);
	vc_id v7 = put_bytes("config.json", doc, n);
	version_is(v7, doc, n);
	close_store();
	snprintf(sql, sizeof sql, "SELECT codec = 'zstd' FROM blobs WHERE id ="
		 " (SELECT blob_id FROM versions WHERE id = %lld)", (long long)v7);
	CHECK_EQ(raw_int(sql), 1);
}

/* A store written before compression existed: every blob 'raw' (made
 * here by decoding every blob and writing it back raw).  It opens, reads
 * and checks clean, and new commits delta against its raw keyframes. */
static void t_raw_store(void)
{
	enum { N = 20 };
	static char docs[N + 1][24 << 10];
	static size_t lens[N + 1];
	vc_id ids[N + 1];
	long vals[NKEYS];
	sqlite3 *db;
	sqlite3_stmt *st;

	new_store();
	json_history_init(vals);
	for (long i = 0; i <= N; i++) {
		json_history_step(vals, i);
		lens[i] = json_doc(docs[i], sizeof docs[i], vals);
		if (i < N)
			ids[i] = put_bytes("config.json", docs[i], lens[i]);
	}
	put_bytes("small", "tiny", 4);
	close_store();
	db = raw_open();
	CHECK(sqlite3_exec(db, "BEGIN; DROP TRIGGER blobs_no_update", NULL, NULL, NULL) == SQLITE_OK);
	CHECK(sqlite3_prepare_v2(db, "UPDATE blobs SET codec = 'raw', data = ?1 WHERE id ="
				 " (SELECT blob_id FROM versions WHERE id = ?2)", -1, &st, NULL) == SQLITE_OK);
	for (int i = 0; i < N; i++) {
		sqlite3_bind_blob(st, 1, docs[i], (int)lens[i], SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ids[i]);
		CHECK(sqlite3_step(st) == SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	CHECK(sqlite3_exec(db, "CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs BEGIN SELECT"
			   " RAISE(ABORT, 'verconf: blobs rows are immutable'); END; COMMIT",
			   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE codec != 'raw'"), 0);
	CHECK_EQ(raw_int("SELECT count(*) FROM blobs WHERE length(data) != size"), 0);
	S = open_store(VC_OPEN_READONLY);
	for (int i = 0; i < N; i++)
		version_is(ids[i], docs[i], lens[i]);
	content_is("small", "tiny");
	FSCK_CLEAN();
	close_store();
	/* New versions: a delta whose base is the raw head. */
	S = open_store(VC_OPEN_WRITER);
	ids[N] = put_bytes("config.json", docs[N], lens[N]);
	for (int i = 0; i <= N; i++)
		version_is(ids[i], docs[i], lens[i]);
	FSCK_CLEAN();
	close_store();
	CHECK_EQ(raw_int("SELECT k.codec = 'raw' FROM versions v JOIN blobs b ON b.id = v.blob_id"
			 " JOIN blobs k ON k.id = CAST(substr(b.codec, 6) AS INTEGER)"
			 " WHERE b.codec GLOB 'zstd:*' AND v.id = (SELECT max(id) FROM versions)"), 1);
	CHECK_EQ(raw_int("PRAGMA user_version"), 1);
}

/* Like git's `du` of a repository: apparent sizes of every file below. */
static long long du_bytes(const char *path)
{
	struct stat st;
	long long sum = 0;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return st.st_size;
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		sum += du_bytes(sub);
	}
	if (d)
		closedir(d);
	return sum;
}

static int run_quiet(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The benchmark's store growth: 10,000 commits of a 20 KiB JSON config
 * changing one value each (synchronous=NORMAL), store size next to the raw
 * size and to the same history in git after `git gc`, which the store
 * must not exceed.  Every version reads back; fsck is clean.
 */
static void t_growth(void)
{
	enum { N = 10000 };
	static char doc[24 << 10];
	static vc_id ids[N];
	long vals[NKEYS];
	char repo[256], cmd[1024];
	long long raw = 0, git = -1;
	FILE *gf = NULL;
	struct stat st;
	size_t n = 0;
	double t0, commit_s, read_s;

	snprintf(repo, sizeof repo, "%s/growth.git", dir);
	snprintf(cmd, sizeof cmd, "git init -q --bare %s >/dev/null 2>&1", repo);
	if (run_quiet("git --version >/dev/null 2>&1") == 0 && run_quiet(cmd) == 0) {
		snprintf(cmd, sizeof cmd, "git --git-dir=%s fast-import --quiet", repo);
		gf = popen(cmd, "w");
		CHECK(gf);
	}
	S = open_store(VC_OPEN_CREATE | VC_OPEN_WRITER | VC_OPEN_SYNC_NORMAL);
	json_history_init(vals);
	commit_s = 0;
	for (long i = 0; i < N; i++) {
		json_history_step(vals, i);
		n = json_doc(doc, sizeof doc, vals);
		raw += (long long)n;
		t0 = now_s();
		ids[i] = put_bytes("config.json", doc, n);
		commit_s += now_s() - t0;
		if (gf) {
			fprintf(gf, "commit refs/heads/main\ncommitter t <t@localhost> %ld +0000\n"
				"data 8\nrev %4ld\nM 100644 inline config.json\ndata %zu\n",
				1700000000 + i, i % 10000, n);
			fwrite(doc, 1, n, gf);
			fputc('\n', gf);
		}
	}
	/* Every version back, byte-identical. */
	json_history_init(vals);
	t0 = now_s();
	for (long i = 0; i < N; i++) {
		json_history_step(vals, i);
		n = json_doc(doc, sizeof doc, vals);
		version_is(ids[i], doc, n);
	}
	read_s = now_s() - t0;
	FSCK_CLEAN();
	close_store();
	CHECK(stat(dbfile, &st) == 0);
	long long store = st.st_size;
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", dbfile);
	if (stat(wal, &st) == 0)
		store += st.st_size;
	if (gf) {
		CHECK(pclose(gf) == 0);
		snprintf(cmd, sizeof cmd, "git --git-dir=%s gc -q", repo);
		CHECK(run_quiet(cmd) == 0);
		git = du_bytes(repo);
	}
	printf("| %d commits of a %zu-byte JSON, one value changed each | raw | verconf store |"
	       " git after `git gc` | store / git |\n|---|---|---|---|---|\n"
	       "| | %.1f MiB | %.2f MiB | %s%.2f MiB | %.2f |\n", N, n, raw / 1048576.0,
	       store / 1048576.0, git < 0 ? "(no git) " : "", git / 1048576.0,
	       git > 0 ? (double)store / git : 0);
	printf("commit: %.0f us each (synchronous=NORMAL, compression included);"
	       " read: %.0f us per version\n", commit_s / N * 1e6, read_s / N * 1e6);
	printf("blobs: %lld keyframes (%lld bytes), %lld deltas (%lld bytes)\n",
	       raw_int("SELECT count(*) FROM blobs WHERE codec = 'zstd'"),
	       raw_int("SELECT sum(length(data)) FROM blobs WHERE codec = 'zstd'"),
	       raw_int("SELECT count(*) FROM blobs WHERE codec GLOB 'zstd:*'"),
	       raw_int("SELECT sum(length(data)) FROM blobs WHERE codec GLOB 'zstd:*'"));
	CHECK_EQ(raw_int(BAD_DELTAS), 0);
	if (git > 0 && store > git)
		fail(__FILE__, __LINE__, "store %lld bytes > git %lld bytes", store, git);
}

/* ---- main -------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "new_store", t_new_store },
	{ "dedup", t_dedup },
	{ "noop", t_noop },
	{ "immutable", t_immutable },
	{ "rollback_activate", t_rollback_activate },
	{ "activate_errors", t_activate_errors },
	{ "rejected", t_rejected },
	{ "commit_rules", t_commit_rules },
	{ "rename_history", t_rename_history },
	{ "rename_dir", t_rename_dir },
	{ "delete_restore", t_delete_restore },
	{ "rmdir_nonempty", t_rmdir_nonempty },
	{ "tree_at", t_tree_at },
	{ "seq_at_time", t_seq_at_time },
	{ "restore", t_restore },
	{ "link", t_link },
	{ "set_times", t_set_times },
	{ "path_check", t_path_check },
	{ "file_mode", t_file_mode },
	{ "open_errors", t_open_errors },
	{ "writer_busy", t_writer_busy },
	{ "crash", t_crash },
	{ "deferred_sync", t_deferred_sync },
	{ "fsck_corrupt", t_fsck_corrupt },
	{ "listing", t_listing },
	{ "query_plans", t_query_plans },
	{ "zstd_roundtrip", t_zstd_roundtrip },
	{ "zstd_dedup", t_zstd_dedup },
	{ "delta_base", t_delta_base },
	{ "delta_corrupt", t_delta_corrupt },
	{ "raw_store", t_raw_store },
	{ "growth", t_growth },
};

int main(int argc, char **argv)
{
	size_t n = sizeof cases / sizeof cases[0];

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			puts(cases[i].name);
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(argv[1], cases[i].name)) {
			setup();
			cases[i].fn();
			return 0;
		}
	}
	fprintf(stderr, "%s: no case \"%s\" (see --list)\n", argv[0], argv[1]);
	return 2;
}
