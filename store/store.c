/*
 * verconf content store, implemented on SQLite.  The contract is store.h;
 * the schema and its invariants are described in README.md next to this
 * file.  Conventions used throughout:
 *
 *   - every public function returns 0 (or a callback's value) or a negative
 *     errno, and leaves a message in s->err;
 *   - every mutating public function is one BEGIN IMMEDIATE ... COMMIT
 *     transaction (tx_begin/tx_end); the *_tx helpers run inside it and
 *     simply return an error, tx_end then rolls back;
 *   - "none" (no head, no source, no from/to version) is NULL in the
 *     database and 0 in the C API.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>
#include <zstd.h>

/* PRAGMA application_id: "vcon" in ASCII, so file(1) and a hex dump show
 * what the file is. */
#define VC_APPLICATION_ID 0x76636f6e
#define VC_SCHEMA_VERSION 1

/* How long a handle waits for another connection's lock before SQLITE_BUSY.
 * Readers in WAL mode never wait for the writer, but a checkpoint or the
 * first open of the -shm file can briefly need an exclusive lock. */
#define VC_BUSY_MS 5000

/*
 * Blob codecs (README.md, "Codecs and keyframes").  blobs.codec is one of
 *   'raw'          data is the content;
 *   'zstd'         data is one standalone zstd frame of the content;
 *   'zstd:<id>'    data is one zstd frame compressed with blob <id>'s raw
 *                  content as reference prefix (a delta).
 * 'raw' and 'zstd' blobs are keyframes; a delta's base is always a
 * keyframe, so reading any blob takes at most two decompressions.
 */
#define VC_RAW_MAX 63            /* blobs up to this size always stay raw */
#define VC_ZSTD_LEVEL 9          /* keyframes */
#define VC_DELTA_LEVEL 9         /* deltas: written at every commit */
/* A delta is stored only while it is at most 1/VC_DELTA_FRACTION of the
 * content compressed standalone; past that the commit starts a new
 * keyframe. */
#define VC_DELTA_FRACTION 8
/* The last decoded zstd keyframe is kept for the next delta (read or
 * commit), up to this size. */
#define VC_KEYCACHE_MAX (16u << 20)

/* ---- schema ------------------------------------------------------------ */

/*
 * The whole schema, created in one transaction together with the root
 * directory, so a store either is complete or is not a store at all.
 * Foreign keys are declared for documentation and for the sqlite3 shell;
 * they are not enforced (paths.head and versions.path_id reference each
 * other), vc_fsck verifies them instead.
 */
static const char schema_sql[] =
	"CREATE TABLE blobs (\n"
	"  id     INTEGER PRIMARY KEY,\n"
	"  sha256 BLOB NOT NULL UNIQUE CHECK (length(sha256) = 32),\n"
	"  size   INTEGER NOT NULL CHECK (size >= 0),\n"
	"  codec  TEXT NOT NULL DEFAULT 'raw',\n"
	"  data   BLOB NOT NULL\n"
	");\n"
	"CREATE TABLE paths (\n"
	"  id       INTEGER PRIMARY KEY,\n"
	"  path     TEXT NOT NULL UNIQUE,\n"
	"  parent   INTEGER REFERENCES paths(id),\n"
	"  name     TEXT NOT NULL,\n"
	"  head     INTEGER REFERENCES versions(id),\n"
	"  atime_ns INTEGER NOT NULL,\n"
	"  mtime_ns INTEGER NOT NULL,\n"
	"  ctime_ns INTEGER NOT NULL\n"
	");\n"
	/* Partial index: readdir and the emptiness test of rmdir only see live
	 * children, so tombstones (history) never make them slower. */
	"CREATE INDEX paths_live_children ON paths(parent, name) WHERE head IS NOT NULL;\n"
	"CREATE TABLE versions (\n"
	"  id         INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  path_id    INTEGER NOT NULL REFERENCES paths(id),\n"
	"  kind       TEXT NOT NULL CHECK (kind IN ('file', 'dir', 'symlink')),\n"
	"  blob_id    INTEGER REFERENCES blobs(id),\n"
	"  size       INTEGER NOT NULL,\n"
	"  mode       INTEGER NOT NULL,\n"
	"  uid        INTEGER NOT NULL,\n"
	"  gid        INTEGER NOT NULL,\n"
	"  op         TEXT NOT NULL,\n"
	"  source     INTEGER REFERENCES versions(id),\n"
	"  created_ns INTEGER NOT NULL,\n"
	"  actor_uid  INTEGER NOT NULL,\n"
	"  actor_gid  INTEGER NOT NULL,\n"
	"  actor_pid  INTEGER NOT NULL,\n"
	"  actor_comm TEXT NOT NULL,\n"
	"  status     TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),\n"
	"  reason     TEXT\n"
	");\n"
	"CREATE INDEX versions_by_path ON versions(path_id, id);\n"
	"CREATE TABLE journal (\n"
	"  seq          INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  time_ns      INTEGER NOT NULL,\n"
	"  action       TEXT NOT NULL,\n"
	"  path_id      INTEGER NOT NULL REFERENCES paths(id),\n"
	"  from_version INTEGER REFERENCES versions(id),\n"
	"  to_version   INTEGER REFERENCES versions(id),\n"
	"  actor_uid    INTEGER NOT NULL,\n"
	"  actor_gid    INTEGER NOT NULL,\n"
	"  actor_pid    INTEGER NOT NULL,\n"
	"  actor_comm   TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX journal_by_path ON journal(path_id, seq);\n"
	"CREATE INDEX journal_by_time ON journal(time_ns);\n"
#define IMMUTABLE(t, ev)                                                      \
	"CREATE TRIGGER " t "_no_" ev " BEFORE " ev " ON " t                  \
	" BEGIN SELECT RAISE(ABORT, 'verconf: " t " rows are immutable'); END;\n"
	IMMUTABLE("versions", "update") IMMUTABLE("versions", "delete")
	IMMUTABLE("blobs", "update") IMMUTABLE("blobs", "delete")
	IMMUTABLE("journal", "update") IMMUTABLE("journal", "delete");

/* The trigger names created above, checked by vc_fsck. */
static const char trigger_list_sql[] =
	"('versions_no_update'), ('versions_no_delete'), ('blobs_no_update'),"
	" ('blobs_no_delete'), ('journal_no_update'), ('journal_no_delete')";

/* ---- cached statements ------------------------------------------------- */

/* Column lists shared by the statements that fill a vc_version / vc_entry,
 * read back by read_version() / read_entry() in this order.  The path id
 * is p.id, not v.path_id, so deleted paths (no version) still report it. */
#define VCOLS                                                                 \
	"v.id, p.id, p.path, v.kind, v.op, v.status, v.reason, v.size, v.mode," \
	" v.uid, v.gid, v.source, v.created_ns, b.sha256, v.actor_uid,"       \
	" v.actor_gid, v.actor_pid, v.actor_comm"
#define ECOLS VCOLS ", p.atime_ns, p.mtime_ns, p.ctime_ns, p.name"
#define HEAD_JOIN                                                             \
	" FROM paths p JOIN versions v ON v.id = p.head"                      \
	" LEFT JOIN blobs b ON b.id = v.blob_id"
#define VER_JOIN                                                              \
	" FROM versions v JOIN paths p ON p.id = v.path_id"                   \
	" LEFT JOIN blobs b ON b.id = v.blob_id"
#define ACTOR_COLS "actor_uid, actor_gid, actor_pid, actor_comm"
/* The keyframe of delta blob b ('zstd:<id>'), NULL for any other codec. */
#define DELTA_BASE(b) "CASE WHEN " b ".codec GLOB 'zstd:*'"                 \
	" THEN CAST(substr(" b ".codec, 6) AS INTEGER) END"
/* A blob row b and its keyframe k, read by read_blobrow() in this order. */
#define BLOB_COLS "b.id, b.codec, b.size, b.sha256, b.data," \
	" k.id, k.codec, k.size, k.sha256, k.data"
#define VER_BLOB_JOIN " FROM versions v LEFT JOIN blobs b ON b.id = v.blob_id" \
	" LEFT JOIN blobs k ON k.id = " DELTA_BASE("b")

enum {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_LOOKUP, ST_GETVER, ST_CONTENT, ST_LISTDIR, ST_LISTVER,
	ST_PATHS_ALL, ST_PATHS_LIVE, ST_TREE, ST_LASTSEQ, ST_SEQTIME,
	ST_PATHINFO, ST_PATHINS, ST_LASTTIME, ST_BLOBFIND, ST_BLOBINS,
	ST_VERBLOB, ST_VERINS, ST_CLONE, ST_SETHEAD, ST_JOURNAL,
	ST_LIVECHILD, ST_LASTJ, ST_LASTDIR, ST_SETTIMES, ST_DESC,
	ST_RESTORE, ST_BASEFOR,
	ST_COUNT
};

static const char *const st_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_LOOKUP] = "SELECT " ECOLS HEAD_JOIN " WHERE p.path = ?1",
	[ST_GETVER] = "SELECT " VCOLS VER_JOIN " WHERE v.id = ?1",
	/* A version's blob and, for a delta, its keyframe: one probe of the
	 * versions b-tree and at most two rowid probes of blobs. */
	[ST_CONTENT] = "SELECT v.kind, v.blob_id, " BLOB_COLS VER_BLOB_JOIN " WHERE v.id = ?1",
	[ST_LISTDIR] = "SELECT " ECOLS HEAD_JOIN
		       " WHERE p.parent = ?1 AND p.head IS NOT NULL ORDER BY p.name",
	[ST_LISTVER] = "SELECT " VCOLS VER_JOIN
		       " WHERE v.path_id = ?1 ORDER BY v.id DESC LIMIT ?2",
	[ST_PATHS_ALL] = "SELECT " ECOLS " FROM paths p"
			 " LEFT JOIN versions v ON v.id = p.head"
			 " LEFT JOIN blobs b ON b.id = v.blob_id ORDER BY p.path",
	[ST_PATHS_LIVE] = "SELECT " ECOLS HEAD_JOIN " ORDER BY p.path",
	/* For every path, its newest journal entry at or before ?1 (one
	 * index probe per path on journal_by_path). */
	[ST_TREE] = "SELECT " ECOLS " FROM paths p"
		    " JOIN journal j ON j.seq = (SELECT seq FROM journal"
		    "   WHERE path_id = p.id AND seq <= ?1 ORDER BY seq DESC LIMIT 1)"
		    " JOIN versions v ON v.id = j.to_version"
		    " LEFT JOIN blobs b ON b.id = v.blob_id ORDER BY p.path",
	[ST_LASTSEQ] = "SELECT seq FROM journal ORDER BY seq DESC LIMIT 1",
	/* Journal times never decrease (see tx_begin), so walking the time
	 * index backwards finds the newest seq at or before ?1. */
	[ST_SEQTIME] = "SELECT seq FROM journal WHERE time_ns <= ?1"
		       " ORDER BY time_ns DESC, seq DESC LIMIT 1",
	[ST_PATHINFO] = "SELECT p.id, p.head, v.kind FROM paths p"
			" LEFT JOIN versions v ON v.id = p.head WHERE p.path = ?1",
	[ST_PATHINS] = "INSERT INTO paths(path, parent, name, head, atime_ns, mtime_ns,"
		       " ctime_ns) VALUES (?1, ?2, ?3, NULL, ?4, ?4, ?4)",
	[ST_LASTTIME] = "SELECT time_ns FROM journal ORDER BY seq DESC LIMIT 1",
	[ST_BLOBFIND] = "SELECT id FROM blobs WHERE sha256 = ?1",
	[ST_BLOBINS] = "INSERT INTO blobs(sha256, size, codec, data) VALUES (?1, ?2, ?4, ?3)",
	[ST_VERBLOB] = "SELECT v.kind, v.blob_id, v.size, b.sha256 FROM versions v"
		       " LEFT JOIN blobs b ON b.id = v.blob_id WHERE v.id = ?1",
	[ST_VERINS] = "INSERT INTO versions(path_id, kind, blob_id, size, mode, uid, gid,"
		      " op, source, created_ns, " ACTOR_COLS ", status, reason)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
		      " ?14, ?15, ?16)",
	/* A copy of version ?6 at path ?1 (link, rename): same kind, blob and
	 * metadata, new op/actor, source = the copied version. */
	[ST_CLONE] = "INSERT INTO versions(path_id, kind, blob_id, size, mode, uid, gid,"
		     " op, source, created_ns, " ACTOR_COLS ", status, reason)"
		     " SELECT ?1, kind, blob_id, size, mode, uid, gid, ?2, id, ?3,"
		     " ?4, ?5, ?7, ?8, 'accepted', NULL FROM versions WHERE id = ?6",
	[ST_SETHEAD] = "UPDATE paths SET head = ?2, mtime_ns = ?3, ctime_ns = ?3 WHERE id = ?1",
	[ST_JOURNAL] = "INSERT INTO journal(time_ns, action, path_id, from_version,"
		       " to_version, " ACTOR_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_LIVECHILD] = "SELECT 1 FROM paths WHERE parent = ?1 AND head IS NOT NULL LIMIT 1",
	[ST_LASTJ] = "SELECT from_version, to_version FROM journal WHERE path_id = ?1"
		     " ORDER BY seq DESC LIMIT 1",
	[ST_LASTDIR] = "SELECT id FROM versions WHERE path_id = ?1 AND kind = 'dir'"
		       " AND status = 'accepted' ORDER BY id DESC LIMIT 1",
	[ST_SETTIMES] = "UPDATE paths SET"
			" atime_ns = CASE WHEN ?2 < 0 THEN atime_ns ELSE ?2 END,"
			" mtime_ns = CASE WHEN ?3 < 0 THEN mtime_ns ELSE ?3 END,"
			" ctime_ns = ?4 WHERE id = ?1",
	/* Live descendants of a directory: the range [dir/, dir0) of the
	 * path index ('0' is the byte after '/'), in path order so parents
	 * come before their children. */
	[ST_DESC] = "SELECT id, path, head FROM paths WHERE path >= ?1 || '/'"
		    " AND path < ?1 || '0' AND head IS NOT NULL ORDER BY path",
	/* Every path with its head now and the version it showed at ?1. */
	[ST_RESTORE] = "SELECT p.id, p.head, (SELECT to_version FROM journal"
		       "   WHERE path_id = p.id AND seq <= ?1 ORDER BY seq DESC LIMIT 1)"
		       " FROM paths p ORDER BY p.path",
	/* The delta base for a new blob of path ?1: the keyframe of its
	 * head's blob (the head's blob itself when it is a keyframe); for a
	 * path without head, of its newest version with content. */
	[ST_BASEFOR] = "SELECT k.id, k.codec, k.size, k.sha256, k.data FROM versions v"
		       " JOIN blobs b ON b.id = v.blob_id"
		       " JOIN blobs k ON k.id = coalesce(" DELTA_BASE("b") ", b.id)"
		       " WHERE v.id = coalesce((SELECT head FROM paths WHERE id = ?1),"
		       "   (SELECT id FROM versions WHERE path_id = ?1 AND blob_id IS NOT NULL"
		       "    ORDER BY id DESC LIMIT 1))"
		       " AND (k.codec = 'raw' OR k.codec = 'zstd')",
};

struct vc_store {
	sqlite3 *db;
	char *file;
	int flags;
	/* fd holding the flock() writer lock, -1 if none; see vc_close(). */
	int lockfd;
	/* Deferred durability (vc_sync): changes counts committed write
	 * transactions (atomic: vc_change_mark may read it on any thread);
	 * synced is the count known durable and sync_error the first failure
	 * (final), under sync_lock; walfd is an fd of the -wal file, walino
	 * its inode, both fixed at open. */
	uint64_t changes;
	pthread_mutex_t sync_lock;
	uint64_t synced;
	int sync_error;
	int walfd;
	ino_t walino;
	/* The current transaction's clock (tx_begin): every row written by
	 * one call carries the same time. */
	int64_t now;
	sqlite3_stmt *st[ST_COUNT];
	/* zstd contexts, created at first use. */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	/* The last decoded zstd keyframe (blob id and raw content's hash:
	 * a rolled back transaction can leave a rowid to be reused). */
	struct {
		vc_id id;
		uint8_t sha256[32];
		void *buf;
		size_t len;
	} key;
	char err[1024];
};

/* ---- errors ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static int seterr(vc_store *s, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* SQLite result code to errno, as promised by the header: a full disk is
 * ENOSPC, the rest is an I/O error except for a few codes that have an
 * obvious, more useful errno. */
static int sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_TOOBIG: return -EFBIG;
	case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	default: return -EIO;
	}
}

/* Puts "what: " in front of the current message. */
static int err_context(vc_store *s, int rc, const char *what)
{
	char keep[sizeof s->err];

	memcpy(keep, s->err, sizeof keep);
	return seterr(s, rc, "%s: %s", what, keep);
}

static int dberr(vc_store *s, int rc, const char *what)
{
	return seterr(s, sqlite_errno(rc), "%s: %s", what, sqlite3_errmsg(s->db));
}

/* ---- statement helpers ------------------------------------------------- */

/*
 * Cached statement id, ready to bind.  A cached statement that is still
 * running (a listing whose callback calls back into the store) is not
 * shared: a private copy is prepared, and release() finalizes it.
 */
static int prep(vc_store *s, int id, sqlite3_stmt **out)
{
	sqlite3_stmt **slot = &s->st[id];
	int rc;

	if (*slot && !sqlite3_stmt_busy(*slot)) {
		*out = *slot;
		return 0;
	}
	rc = sqlite3_prepare_v3(s->db, st_sql[id], -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
	if (rc != SQLITE_OK)
		return dberr(s, rc, "prepare");
	if (!*slot)
		*slot = *out;
	return 0;
}

static void release(vc_store *s, int id, sqlite3_stmt *st)
{
	if (st == s->st[id]) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	} else {
		sqlite3_finalize(st);
	}
}

/* 1 for a row, 0 when done, negative errno on error. */
static int step(vc_store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return dberr(s, rc, sqlite3_sql(st));
}

/* Run a cached statement with no result rows; bindings done by the caller. */
static int run(vc_store *s, int id, sqlite3_stmt *st)
{
	int rc = step(s, st);

	release(s, id, st);
	return rc > 0 ? 0 : rc;
}

/* Binding helpers.  Ids of 0 mean "none" and are stored as NULL. */
static void bind_id(sqlite3_stmt *st, int i, vc_id id)
{
	if (id)
		sqlite3_bind_int64(st, i, id);
	else
		sqlite3_bind_null(st, i);
}

static void bind_str(sqlite3_stmt *st, int i, const char *str)
{
	sqlite3_bind_text(st, i, str, -1, SQLITE_STATIC);
}

/* Binds the four actor columns at i..i+3.  comm need not be terminated. */
static void bind_actor(sqlite3_stmt *st, int i, const vc_actor *a)
{
	sqlite3_bind_int64(st, i, a->uid);
	sqlite3_bind_int64(st, i + 1, a->gid);
	sqlite3_bind_int64(st, i + 2, a->pid);
	sqlite3_bind_text(st, i + 3, a->comm, (int)strnlen(a->comm, VC_COMM_MAX - 1),
			  SQLITE_STATIC);
}

static void col_str(sqlite3_stmt *st, int i, char *dst, size_t n)
{
	const char *txt = (const char *)sqlite3_column_text(st, i);

	snprintf(dst, n, "%s", txt ? txt : "");
}

/* ---- names ------------------------------------------------------------- */

static const char *const op_names[] = {
	[VC_OP_CREATE] = "create", [VC_OP_WRITE] = "write",
	[VC_OP_TRUNCATE] = "truncate", [VC_OP_CHMOD] = "chmod",
	[VC_OP_CHOWN] = "chown", [VC_OP_LINK] = "link",
	[VC_OP_RENAME] = "rename", [VC_OP_SYMLINK] = "symlink",
	[VC_OP_IMPORT] = "import", [VC_OP_MKDIR] = "mkdir",
};
static const char *const action_names[] = {
	[VC_ACT_COMMIT] = "commit", [VC_ACT_ACTIVATE] = "activate",
	[VC_ACT_ROLLBACK] = "rollback", [VC_ACT_DELETE] = "delete",
	[VC_ACT_RESTORE] = "restore", [VC_ACT_RENAME] = "rename",
};
static const char *const kind_names[] = {
	[VC_FILE] = "file", [VC_DIR] = "dir", [VC_SYMLINK] = "symlink",
};
static const char *const status_names[] = {
	[VC_ACCEPTED] = "accepted", [VC_REJECTED] = "rejected",
};
#define NNAMES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int n, int v)
{
	return v >= 0 && v < n && names[v] ? names[v] : NULL;
}

/* Index of txt in names, 0 when unknown or NULL. */
static int name_index(const char *const *names, int n, const unsigned char *txt)
{
	for (int i = 0; txt && i < n; i++)
		if (names[i] && !strcmp(names[i], (const char *)txt))
			return i;
	return 0;
}

const char *vc_op_name(enum vc_op op)
{
	const char *n = name_of(op_names, NNAMES(op_names), (int)op);

	return n ? n : "unknown";
}

const char *vc_action_name(enum vc_action a)
{
	const char *n = name_of(action_names, NNAMES(action_names), (int)a);

	return n ? n : "unknown";
}

const char *vc_kind_name(enum vc_kind k)
{
	const char *n = name_of(kind_names, NNAMES(kind_names), (int)k);

	return n ? n : "unknown";
}

/* ---- paths ------------------------------------------------------------- */

int vc_path_check(const char *path)
{
	const char *p = path;

	if (!path)
		return -EINVAL;
	if (!*path)
		return 0; /* the root */
	if (strlen(path) > VC_PATH_MAX)
		return -ENAMETOOLONG;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		/* Empty: a leading, doubled or trailing slash. */
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (n > VC_NAME_MAX)
			return -ENAMETOOLONG;
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

static int check_path(vc_store *s, const char *path)
{
	int rc = vc_path_check(path);

	if (rc)
		return seterr(s, rc, "invalid path \"%.200s%s\": %s", path ? path : "(null)",
			      path && strlen(path) > 200 ? "..." : "",
			      rc == -EINVAL ? "empty, \".\" or \"..\" component"
					    : "name or path too long");
	return 0;
}

/* The parent of path into buf ("" for a top-level name); returns the
 * basename within path. */
static const char *split_parent(const char *path, char *buf)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	memcpy(buf, path, n);
	buf[n] = 0;
	return slash ? slash + 1 : path;
}

static int is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && path[n] == '/';
}

/* ---- time and actors --------------------------------------------------- */

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A NULL actor means this process (tools, tests). */
static const vc_actor *actor_or_self(const vc_actor *a, vc_actor *self)
{
	FILE *f;

	if (a)
		return a;
	memset(self, 0, sizeof *self);
	self->uid = getuid();
	self->gid = getgid();
	self->pid = getpid();
	f = fopen("/proc/self/comm", "re");
	if (f) {
		if (fgets(self->comm, sizeof self->comm, f))
			self->comm[strcspn(self->comm, "\n")] = 0;
		fclose(f);
	}
	return self;
}

/* ---- transactions ------------------------------------------------------ */

static int tx_run(vc_store *s, int id)
{
	sqlite3_stmt *st;
	int rc = prep(s, id, &st);

	return rc ? rc : run(s, id, st);
}

/*
 * BEGIN IMMEDIATE takes the write lock up front, so a transaction never
 * fails half way with SQLITE_BUSY after it has read.  The transaction's
 * clock is the wall clock, but never earlier than the newest journal
 * entry: journal times then never decrease even if the clock is stepped
 * back, and vc_seq_at_time can use the time index.
 */
static int tx_begin(vc_store *s)
{
	sqlite3_stmt *st;
	int rc;

	if (s->flags & VC_OPEN_READONLY)
		return seterr(s, -EROFS, "%s: store opened read-only", s->file);
	if ((rc = tx_run(s, ST_BEGIN)))
		return rc;
	s->now = realtime_ns();
	if ((rc = prep(s, ST_LASTTIME, &st)))
		goto fail;
	rc = step(s, st);
	if (rc > 0 && sqlite3_column_int64(st, 0) > s->now)
		s->now = sqlite3_column_int64(st, 0);
	release(s, ST_LASTTIME, st);
	if (rc >= 0)
		return 0;
fail:
	tx_run(s, ST_ROLLBACK);
	return rc;
}

/* Commit when rc is 0, else roll back; returns the call's result.  SQLite
 * may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR), in
 * which case there is no transaction left to end. */
static int tx_end(vc_store *s, int rc)
{
	if (rc >= 0)
		rc = tx_run(s, ST_COMMIT);
	if (rc >= 0)
		__atomic_add_fetch(&s->changes, 1, __ATOMIC_SEQ_CST);
	if (rc < 0 && !sqlite3_get_autocommit(s->db)) {
		char keep[sizeof s->err];

		memcpy(keep, s->err, sizeof keep);
		tx_run(s, ST_ROLLBACK);
		memcpy(s->err, keep, sizeof keep);
	}
	return rc;
}

/* ---- reading rows ------------------------------------------------------ */

static void read_version(sqlite3_stmt *st, vc_version *v)
{
	const void *sha = sqlite3_column_blob(st, 13);

	memset(v, 0, sizeof *v);
	v->id = sqlite3_column_int64(st, 0);
	v->path_id = sqlite3_column_int64(st, 1);
	col_str(st, 2, v->path, sizeof v->path);
	v->kind = name_index(kind_names, NNAMES(kind_names), sqlite3_column_text(st, 3));
	v->op = name_index(op_names, NNAMES(op_names), sqlite3_column_text(st, 4));
	v->status = name_index(status_names, NNAMES(status_names), sqlite3_column_text(st, 5));
	col_str(st, 6, v->reason, sizeof v->reason);
	v->size = sqlite3_column_int64(st, 7);
	v->mode = (uint32_t)sqlite3_column_int64(st, 8);
	v->uid = (uint32_t)sqlite3_column_int64(st, 9);
	v->gid = (uint32_t)sqlite3_column_int64(st, 10);
	v->source = sqlite3_column_int64(st, 11);
	v->created_ns = sqlite3_column_int64(st, 12);
	if (sha && sqlite3_column_bytes(st, 13) == 32)
		memcpy(v->sha256, sha, 32);
	v->actor.uid = (uint32_t)sqlite3_column_int64(st, 14);
	v->actor.gid = (uint32_t)sqlite3_column_int64(st, 15);
	v->actor.pid = (int32_t)sqlite3_column_int64(st, 16);
	col_str(st, 17, v->actor.comm, sizeof v->actor.comm);
}

static void read_entry(sqlite3_stmt *st, vc_entry *e)
{
	read_version(st, &e->head);
	e->atime_ns = sqlite3_column_int64(st, 18);
	e->mtime_ns = sqlite3_column_int64(st, 19);
	e->ctime_ns = sqlite3_column_int64(st, 20);
}

/* One path's row: id, head (0: deleted) and the head's kind (0: deleted).
 * -ENOENT (all zero) when the path was never known. */
struct pinfo {
	vc_id id;
	vc_id head;
	enum vc_kind kind;
};

static int path_info(vc_store *s, const char *path, struct pinfo *pi)
{
	sqlite3_stmt *st;
	int rc;

	memset(pi, 0, sizeof *pi);
	if ((rc = prep(s, ST_PATHINFO, &st)))
		return rc;
	bind_str(st, 1, path);
	rc = step(s, st);
	if (rc > 0) {
		pi->id = sqlite3_column_int64(st, 0);
		pi->head = sqlite3_column_int64(st, 1);
		pi->kind = name_index(kind_names, NNAMES(kind_names), sqlite3_column_text(st, 2));
	}
	release(s, ST_PATHINFO, st);
	if (rc == 0)
		return seterr(s, -ENOENT, "%s: no such path", path);
	return rc < 0 ? rc : 0;
}

/* Like path_info, but the path must be live. */
static int live_info(vc_store *s, const char *path, struct pinfo *pi)
{
	int rc = path_info(s, path, pi);

	if (rc == 0 && !pi->head)
		rc = seterr(s, -ENOENT, "%s: deleted", *path ? path : "(root)");
	return rc;
}

/* The path id of a non-root path's parent, which must be a live directory
 * (any_parent: only have a paths row, live or not). */
static int parent_of(vc_store *s, const char *path, int any_parent, vc_id *ppid)
{
	char parent[VC_PATH_MAX + 1];
	struct pinfo pi;
	int rc;

	split_parent(path, parent);
	rc = path_info(s, parent, &pi);
	if (rc == -ENOENT || (!rc && !any_parent && !pi.head))
		return seterr(s, -ENOENT, "%s: parent directory does not exist", path);
	if (rc)
		return rc;
	if (!any_parent && pi.kind != VC_DIR)
		return seterr(s, -ENOTDIR, "%s: parent is not a directory", path);
	*ppid = pi.id;
	return 0;
}

/* The parent of a non-root path must be a live directory; its path id. */
static int parent_dir(vc_store *s, const char *path, vc_id *ppid)
{
	return parent_of(s, path, 0, ppid);
}

/* The paths row of path, created (with no head) if it never existed. */
static int path_ensure(vc_store *s, const char *path, vc_id ppid, struct pinfo *pi)
{
	char parent[VC_PATH_MAX + 1];
	sqlite3_stmt *st;
	int rc;

	if (pi->id)
		return 0;
	if ((rc = prep(s, ST_PATHINS, &st)))
		return rc;
	bind_str(st, 1, path);
	bind_id(st, 2, ppid);
	bind_str(st, 3, split_parent(path, parent));
	sqlite3_bind_int64(st, 4, s->now);
	if ((rc = run(s, ST_PATHINS, st)))
		return rc;
	pi->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* 1 if directory pid has a live child, 0 if not, or -errno. */
static int has_live_children(vc_store *s, vc_id pid)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, ST_LIVECHILD, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pid);
	rc = step(s, st);
	release(s, ST_LIVECHILD, st);
	return rc;
}

static int check_empty(vc_store *s, const char *path, vc_id pid)
{
	int rc = has_live_children(s, pid);

	if (rc > 0)
		return seterr(s, -ENOTEMPTY, "%s: directory not empty", path);
	return rc;
}

/* ---- writing rows ------------------------------------------------------ */

/* Point path pid at version to (0: delete) and journal the move. */
static int move_head(vc_store *s, vc_id pid, vc_id from, vc_id to, enum vc_action act,
		     const vc_actor *a)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, ST_SETHEAD, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pid);
	bind_id(st, 2, to);
	sqlite3_bind_int64(st, 3, s->now);
	if ((rc = run(s, ST_SETHEAD, st)))
		return rc;
	if ((rc = prep(s, ST_JOURNAL, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, s->now);
	bind_str(st, 2, vc_action_name(act));
	sqlite3_bind_int64(st, 3, pid);
	bind_id(st, 4, from);
	bind_id(st, 5, to);
	bind_actor(st, 6, a);
	return run(s, ST_JOURNAL, st);
}

/* Content of a version to commit: its blob (0 for directories), size and
 * hash.  data is set when the blob may still have to be stored. */
struct content {
	vc_id blob_id;
	int64_t size;
	uint8_t sha256[32];
	const void *data;
};

static int hash_data(vc_store *s, const void *data, size_t len, uint8_t sha[32])
{
	if (!EVP_Digest(len ? data : "", len, sha, NULL, EVP_sha256(), NULL))
		return seterr(s, -EIO, "SHA-256 computation failed");
	return 0;
}


/* ---- codecs ------------------------------------------------------------ */

enum codec { CODEC_BAD, CODEC_RAW, CODEC_ZSTD, CODEC_DELTA };

/* The codec of a blob row; *base is a delta's keyframe id, else 0. */
static enum codec codec_parse(const char *codec, vc_id *base)
{
	char *end;
	long long id;

	*base = 0;
	if (!codec)
		return CODEC_BAD;
	if (!strcmp(codec, "raw"))
		return CODEC_RAW;
	if (!strcmp(codec, "zstd"))
		return CODEC_ZSTD;
	if (strncmp(codec, "zstd:", 5) || codec[5] < '1' || codec[5] > '9')
		return CODEC_BAD;
	errno = 0;
	id = strtoll(codec + 5, &end, 10);
	if (*end || errno)
		return CODEC_BAD;
	*base = id;
	return CODEC_DELTA;
}

/* One blob row as selected by BLOB_COLS (a delta's keyframe at col + 5). */
struct blobrow {
	vc_id id; /* 0: no row */
	const char *codec;
	int64_t size;
	const uint8_t *sha256; /* NULL unless 32 bytes */
	const void *data;
	size_t n;
};

static void read_blobrow(sqlite3_stmt *st, int col, struct blobrow *b)
{
	b->id = sqlite3_column_int64(st, col);
	b->codec = (const char *)sqlite3_column_text(st, col + 1);
	b->size = sqlite3_column_int64(st, col + 2);
	b->sha256 = sqlite3_column_bytes(st, col + 3) == 32 ? sqlite3_column_blob(st, col + 3)
							   : NULL;
	b->data = sqlite3_column_blob(st, col + 4);
	b->n = (size_t)sqlite3_column_bytes(st, col + 4);
}

/* One zstd frame of exactly size bytes into dst, with prefix (may be NULL)
 * as the reference prefix it was compressed with. */
static int zstd_decode(vc_store *s, const struct blobrow *b, const void *prefix, size_t plen,
		       void *dst)
{
	unsigned long long fcs;
	size_t r;

	if (!s->dctx && !(s->dctx = ZSTD_createDCtx()))
		return seterr(s, -ENOMEM, "out of memory");
	fcs = ZSTD_getFrameContentSize(b->data, b->n);
	if (fcs != (unsigned long long)b->size)
		return seterr(s, -EIO, "blob %lld: zstd frame %s, the row says %lld bytes",
			      (long long)b->id, fcs == ZSTD_CONTENTSIZE_ERROR ? "is invalid"
			      : fcs == ZSTD_CONTENTSIZE_UNKNOWN ? "has no content size"
			      : "holds another size", (long long)b->size);
	ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_and_parameters);
	if (prefix && ZSTD_isError(ZSTD_DCtx_refPrefix(s->dctx, prefix, plen)))
		return seterr(s, -ENOMEM, "zstd: cannot reference the delta base");
	r = ZSTD_decompressDCtx(s->dctx, dst, (size_t)b->size, b->data, b->n);
	if (ZSTD_isError(r) || r != (size_t)b->size)
		return seterr(s, -EIO, "blob %lld: zstd data does not decompress: %s",
			      (long long)b->id, ZSTD_isError(r) ? ZSTD_getErrorName(r)
			      : "short frame");
	return 0;
}

/* The raw content of keyframe k, valid until the next call: a raw row's
 * own bytes, or k decoded into the handle's keyframe cache. */
static int keyframe(vc_store *s, const struct blobrow *k, const void **out, size_t *len)
{
	vc_id base;
	void *buf;
	int rc;

	switch (k->id ? codec_parse(k->codec, &base) : CODEC_BAD) {
	case CODEC_RAW:
		*out = k->data;
		*len = k->n;
		return 0;
	case CODEC_ZSTD:
		break;
	default:
		return seterr(s, -EIO, "delta base blob %lld is %s", (long long)k->id,
			      k->id ? "not a keyframe" : "missing");
	}
	if (s->key.buf && s->key.id == k->id && k->sha256 &&
	    !memcmp(s->key.sha256, k->sha256, 32) && s->key.len == (size_t)k->size) {
		*out = s->key.buf;
		*len = s->key.len;
		return 0;
	}
	if (!(buf = malloc(k->size ? (size_t)k->size : 1)))
		return seterr(s, -ENOMEM, "out of memory");
	if ((rc = zstd_decode(s, k, NULL, 0, buf))) {
		free(buf);
		return rc;
	}
	free(s->key.buf);
	s->key.buf = NULL;
	*out = buf;
	*len = (size_t)k->size;
	if (k->sha256 && (size_t)k->size <= VC_KEYCACHE_MAX) {
		s->key.buf = buf;
		s->key.id = k->id;
		s->key.len = (size_t)k->size;
		memcpy(s->key.sha256, k->sha256, 32);
	} else {
		/* Too big to keep: the caller's pointer stays valid until
		 * the next call, which frees it. */
		s->key.buf = buf;
		s->key.id = 0;
	}
	return 0;
}

/*
 * The raw content of blob b (whose keyframe, for a delta, is k) into a
 * malloc'd *out (NULL when empty).  Errors are -EIO with the reason.
 */
static int blob_decode(vc_store *s, const struct blobrow *b, const struct blobrow *k,
		       void **out)
{
	const void *prefix = NULL;
	size_t plen = 0;
	vc_id base;
	void *buf;
	int rc;

	*out = NULL;
	switch (codec_parse(b->codec, &base)) {
	case CODEC_RAW:
		if (b->n != (size_t)b->size)
			return seterr(s, -EIO, "blob %lld: size is %lld, stored data has %zu bytes",
				      (long long)b->id, (long long)b->size, b->n);
		if (!b->n)
			return 0;
		if (!(*out = malloc(b->n)))
			return seterr(s, -ENOMEM, "out of memory");
		memcpy(*out, b->data, b->n);
		return 0;
	case CODEC_DELTA:
		if (k->id != base)
			return seterr(s, -EIO, "blob %lld: delta base blob %lld is missing",
				      (long long)b->id, (long long)base);
		if ((rc = keyframe(s, k, &prefix, &plen))) {
			char what[40];

			snprintf(what, sizeof what, "blob %lld", (long long)b->id);
			return err_context(s, rc, what);
		}
		/* fall through */
	case CODEC_ZSTD:
		break;
	default:
		return seterr(s, -EIO, "blob %lld: unknown codec '%s'", (long long)b->id,
			      b->codec ? b->codec : "");
	}
	if (b->size < 0)
		return seterr(s, -EIO, "blob %lld: invalid size %lld", (long long)b->id,
			      (long long)b->size);
	if (!(buf = malloc(b->size ? (size_t)b->size : 1)))
		return seterr(s, -ENOMEM, "out of memory");
	if ((rc = zstd_decode(s, b, prefix, plen, buf))) {
		free(buf);
		return rc;
	}
	if (b->size)
		*out = buf;
	else
		free(buf);
	return 0;
}

/* src compressed at level, with prefix (may be NULL) as reference prefix,
 * into a malloc'd *out of *n bytes.  0, or -ENOMEM/-EIO. */
static int zstd_encode(vc_store *s, const void *src, size_t len, const void *prefix,
		       size_t plen, int level, void **out, size_t *n)
{
	size_t cap = ZSTD_compressBound(len), r;
	void *buf;

	*out = NULL;
	if (!s->cctx && !(s->cctx = ZSTD_createCCtx()))
		return seterr(s, -ENOMEM, "out of memory");
	ZSTD_CCtx_reset(s->cctx, ZSTD_reset_session_and_parameters);
	/* No checksum (the blob's SHA-256 is checked instead); the frame
	 * records its content size, which decoding checks against size. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    (prefix && ZSTD_isError(ZSTD_CCtx_refPrefix(s->cctx, prefix, plen))))
		return seterr(s, -EIO, "zstd: cannot set up compression");
	if (!(buf = malloc(cap)))
		return seterr(s, -ENOMEM, "out of memory");
	r = ZSTD_compress2(s->cctx, buf, cap, src, len);
	if (ZSTD_isError(r)) {
		free(buf);
		return seterr(s, -EIO, "zstd: %s", ZSTD_getErrorName(r));
	}
	*out = buf;
	*n = r;
	return 0;
}

/* How a new blob is stored: codec and the bytes of blobs.data. */
struct encoded {
	char codec[32];
	const void *data;
	size_t n;
	void *owned; /* data, when it is not the content itself */
};

/*
 * The encoding of content c for path pid (0: a new path), following the
 * keyframe policy of README.md: small blobs raw; otherwise a delta against
 * the path's current keyframe while the delta is at most
 * 1/VC_DELTA_FRACTION of that keyframe's frame (of the content compressed
 * standalone, when the keyframe is raw); else a new keyframe: 'zstd', or
 * 'raw' when zstd does not make it smaller.  So the expensive standalone
 * compression runs only for keyframes.
 */
static int blob_encode(vc_store *s, vc_id pid, const struct content *c, struct encoded *e)
{
	struct blobrow k = { 0 };
	const void *prefix;
	void *zbuf = NULL, *dbuf;
	size_t zn = 0, dn, plen, ref;
	sqlite3_stmt *st;
	int rc = 0;

	memset(e, 0, sizeof *e);
	strcpy(e->codec, "raw");
	e->data = c->size ? c->data : "";
	e->n = (size_t)c->size;
	if (c->size <= VC_RAW_MAX)
		return 0;
	if (pid && !(rc = prep(s, ST_BASEFOR, &st))) {
		sqlite3_bind_int64(st, 1, pid);
		rc = step(s, st);
		if (rc > 0)
			read_blobrow(st, 0, &k);
		/* A keyframe that does not decode (a damaged store, for
		 * vc_fsck to report) is no base: the commit makes a new one. */
		if (rc > 0 && (rc = keyframe(s, &k, &prefix, &plen)) == -EIO)
			rc = 1;
		else if (rc == 0 && k.id &&
		    !(rc = zstd_encode(s, c->data, (size_t)c->size, prefix, plen,
				       VC_DELTA_LEVEL, &dbuf, &dn))) {
			ref = k.n;
			if (strcmp(k.codec, "zstd") &&
			    !(rc = zstd_encode(s, c->data, (size_t)c->size, NULL, 0,
					       VC_ZSTD_LEVEL, &zbuf, &zn)))
				ref = zn < (size_t)c->size ? zn : (size_t)c->size;
			if (!rc && dn * VC_DELTA_FRACTION <= ref) {
				snprintf(e->codec, sizeof e->codec, "zstd:%lld", (long long)k.id);
				e->data = e->owned = dbuf;
				e->n = dn;
			} else {
				free(dbuf);
			}
		}
		release(s, ST_BASEFOR, st);
	}
	if (rc >= 0 && !e->owned && !zbuf)
		rc = zstd_encode(s, c->data, (size_t)c->size, NULL, 0, VC_ZSTD_LEVEL, &zbuf, &zn);
	if (rc < 0 || e->owned || zn >= (size_t)c->size) {
		free(zbuf);
		return rc < 0 ? rc : 0;
	}
	strcpy(e->codec, "zstd");
	e->data = e->owned = zbuf;
	e->n = zn;
	return 0;
}

/* The blob with the hash c->sha256, stored now if no version has it yet
 * (this lookup is the deduplication), encoded for path pid. */
static int blob_put(vc_store *s, vc_id pid, struct content *c)
{
	struct encoded e;
	sqlite3_stmt *st;
	int rc;

	if (c->blob_id)
		return 0;
	if ((rc = prep(s, ST_BLOBFIND, &st)))
		return rc;
	sqlite3_bind_blob(st, 1, c->sha256, 32, SQLITE_STATIC);
	rc = step(s, st);
	if (rc > 0)
		c->blob_id = sqlite3_column_int64(st, 0);
	release(s, ST_BLOBFIND, st);
	if (rc)
		return rc < 0 ? rc : 0;
	if ((rc = blob_encode(s, pid, c, &e)))
		return rc;
	if ((rc = prep(s, ST_BLOBINS, &st))) {
		free(e.owned);
		return rc;
	}
	sqlite3_bind_blob(st, 1, c->sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->size);
	bind_str(st, 4, e.codec);
	/* A zero-length blob: a NULL pointer would bind SQL NULL (e.data is
	 * never NULL).  Content beyond SQLite's blob limit (1 GB by default)
	 * fails here. */
	rc = sqlite3_bind_blob64(st, 3, e.data, (sqlite3_uint64)e.n, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		release(s, ST_BLOBINS, st);
		free(e.owned);
		return seterr(s, sqlite_errno(rc), "storing %lld bytes: %s", (long long)c->size,
			      sqlite3_errstr(rc));
	}
	rc = run(s, ST_BLOBINS, st);
	free(e.owned);
	if (rc)
		return rc;
	c->blob_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* The content of existing version id (for same_content_as). */
static int version_content(vc_store *s, vc_id id, struct content *c)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, ST_VERBLOB, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = step(s, st);
	if (rc > 0) {
		c->blob_id = sqlite3_column_int64(st, 1);
		c->size = sqlite3_column_int64(st, 2);
		if (sqlite3_column_bytes(st, 3) == 32)
			memcpy(c->sha256, sqlite3_column_blob(st, 3), 32);
	}
	release(s, ST_VERBLOB, st);
	if (rc == 0)
		return seterr(s, -ENOENT, "version %lld does not exist", (long long)id);
	if (rc > 0 && !c->blob_id)
		return seterr(s, -EISDIR, "version %lld is a directory, it has no content",
			      (long long)id);
	return rc < 0 ? rc : 0;
}

static int req_content(vc_store *s, const vc_commit_req *req, struct content *c)
{
	memset(c, 0, sizeof *c);
	if (req->kind == VC_DIR)
		return 0;
	if (req->same_content_as)
		return version_content(s, req->same_content_as, c);
	c->size = (int64_t)req->len;
	c->data = req->data;
	return hash_data(s, req->data, req->len, c->sha256);
}

static int insert_version(vc_store *s, const vc_commit_req *req, vc_id pid,
			  const struct content *c, const vc_actor *a, vc_id *vid)
{
	int rej = req->status == VC_REJECTED;
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, ST_VERINS, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pid);
	bind_str(st, 2, vc_kind_name(req->kind));
	bind_id(st, 3, c->blob_id);
	sqlite3_bind_int64(st, 4, c->size);
	sqlite3_bind_int64(st, 5, req->mode & 07777);
	sqlite3_bind_int64(st, 6, req->uid);
	sqlite3_bind_int64(st, 7, req->gid);
	bind_str(st, 8, vc_op_name(req->op));
	bind_id(st, 9, req->source);
	sqlite3_bind_int64(st, 10, s->now);
	bind_actor(st, 11, a);
	bind_str(st, 15, status_names[rej]);
	if (rej)
		sqlite3_bind_text(st, 16, req->reason ? req->reason : "", -1, SQLITE_STATIC);
	if ((rc = run(s, ST_VERINS, st)))
		return rc;
	*vid = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* A new version at path pid copied from version src (link, rename). */
static int clone_version(vc_store *s, vc_id pid, vc_id src, enum vc_op op, const vc_actor *a,
			 vc_id *vid)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, ST_CLONE, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pid);
	bind_str(st, 2, vc_op_name(op));
	sqlite3_bind_int64(st, 3, s->now);
	sqlite3_bind_int64(st, 4, a->uid);
	sqlite3_bind_int64(st, 5, a->gid);
	sqlite3_bind_int64(st, 6, src);
	sqlite3_bind_int64(st, 7, a->pid);
	sqlite3_bind_text(st, 8, a->comm, (int)strnlen(a->comm, VC_COMM_MAX - 1), SQLITE_STATIC);
	if ((rc = run(s, ST_CLONE, st)))
		return rc;
	*vid = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* ---- opening and closing ----------------------------------------------- */

static int get_version(vc_store *s, vc_id id, vc_version *out);
static int commit_tx(vc_store *s, const vc_commit_req *req, vc_id *out, int *created);

/* Runs a statement that yields one integer (a PRAGMA); v = 0 if no row. */
static int query_int(vc_store *s, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);

	*v = 0;
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Open-time failure: the message names the file and says what it is. */
static int open_err(vc_store *s, int rc, const char *what)
{
	int sys = sqlite3_system_errno(s->db);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		return seterr(s, -EINVAL, "not a verconf store: %s: %s (%s)", s->file,
			      sqlite3_errmsg(s->db), what);
	case SQLITE_CORRUPT:
		return seterr(s, -EIO, "%s: store is corrupt (%s: %s)", s->file, what,
			      sqlite3_errmsg(s->db));
	case SQLITE_CANTOPEN:
		/* The file is there but SQLite could not open it: what failed
		 * is the WAL or shared-memory file it creates beside it. */
		if (sys == ENOENT && access(s->file, F_OK) == 0)
			return seterr(s, -EACCES,
				      "%s: cannot create its -wal/-shm files beside it "
				      "(is the directory writable?)", s->file);
		return seterr(s, sys ? -sys : -EACCES, "%s: cannot open: %s", s->file,
			      sys ? strerror(sys) : sqlite3_errmsg(s->db));
	default:
		return seterr(s, sqlite_errno(rc), "%s: %s: %s", s->file, what,
			      sqlite3_errmsg(s->db));
	}
}

static int exec(vc_store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : open_err(s, rc, what);
}

/* The root directory: the first version and journal entry of a store. */
static int create_root(vc_store *s, const vc_actor *creator)
{
	vc_commit_req req = {
		.path = "", .kind = VC_DIR, .op = VC_OP_MKDIR, .mode = 0755,
		.uid = creator->uid, .gid = creator->gid, .actor = creator,
	};

	return commit_tx(s, &req, NULL, NULL);
}

/*
 * Initialise an empty database.  WAL must be switched on outside a
 * transaction; everything else is one transaction, re-checked after the
 * write lock is held, so two processes creating the same store at once
 * initialise it once.
 */
static int init_store(vc_store *s, const vc_actor *creator)
{
	char sql[64];
	int64_t appid;
	int rc;

	if ((rc = exec(s, "BEGIN IMMEDIATE", "begin")))
		return rc;
	s->now = realtime_ns();
	rc = query_int(s, "PRAGMA application_id", &appid);
	if (rc != SQLITE_OK)
		rc = open_err(s, rc, "application_id");
	else if (appid == 0 && !(rc = exec(s, schema_sql, "create schema"))) {
		snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d",
			 VC_APPLICATION_ID, VC_SCHEMA_VERSION);
		if (!(rc = exec(s, sql, "set application_id")))
			rc = create_root(s, creator);
	}
	if (rc == 0 && !(rc = exec(s, "COMMIT", "commit")))
		__atomic_add_fetch(&s->changes, 1, __ATOMIC_SEQ_CST);
	if (rc == 0)
		return 0;
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* An existing file: is it a store we can use? */
static int check_store(vc_store *s, int64_t appid)
{
	int64_t ver, n;
	int rc;

	if (appid != VC_APPLICATION_ID)
		return seterr(s, -EINVAL, "not a verconf store: %s: application_id is 0x%08llx,"
			      " not 0x%08x", s->file, (long long)appid, VC_APPLICATION_ID);
	if ((rc = query_int(s, "PRAGMA user_version", &ver)))
		return open_err(s, rc, "user_version");
	if (ver > VC_SCHEMA_VERSION)
		return seterr(s, -EPROTONOSUPPORT, "%s: store schema version %lld is newer than"
			      " this verconf supports (%d)", s->file, (long long)ver,
			      VC_SCHEMA_VERSION);
	if (ver < VC_SCHEMA_VERSION)
		return seterr(s, -EIO, "%s: store is corrupt: schema version %lld",
			      s->file, (long long)ver);
	rc = query_int(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
		       " name IN ('blobs', 'paths', 'versions', 'journal')", &n);
	if (rc)
		return open_err(s, rc, "reading schema");
	if (n != 4)
		return seterr(s, -EIO, "%s: store is corrupt: tables missing", s->file);
	/* Reading the root touches the path, version and blob b-trees, so
	 * a truncated file is noticed now rather than at the first lookup. */
	rc = query_int(s, "SELECT v.id FROM paths p JOIN versions v ON v.id = p.head"
		       " WHERE p.path = ''", &n);
	if (rc)
		return open_err(s, rc, "reading the root directory");
	if (!n)
		return seterr(s, -EIO, "%s: store is corrupt: no root directory", s->file);
	return 0;
}

/* PRAGMAs of every handle, and WAL mode for read-write ones. */
static int configure(vc_store *s)
{
	char sql[64];
	int64_t appid;
	int rc;

	sqlite3_busy_timeout(s->db, VC_BUSY_MS);
	/* application_id is the first read of the file: a non-database
	 * fails here with SQLITE_NOTADB. */
	if ((rc = query_int(s, "PRAGMA application_id", &appid)))
		return open_err(s, rc, "reading the header");
	/* NORMAL in WAL mode: a commit writes the log without syncing it; the
	 * log is synced before every checkpoint, so a crash loses at most the
	 * newest commits, never consistency.  Deferred handles sync the log
	 * themselves (vc_sync) before they call a change done. */
	snprintf(sql, sizeof sql, "PRAGMA synchronous = %s",
		 s->flags & (VC_OPEN_SYNC_NORMAL | VC_OPEN_SYNC_DEFERRED) ? "NORMAL" : "FULL");
	if ((rc = exec(s, sql, "synchronous")))
		return rc;
	return 0;
}

/* WAL is persistent in the file: set once at creation, a no-op later.  It
 * is only switched on for files known to be stores (or empty), never on
 * somebody else's database opened by mistake. */
static int enable_wal(vc_store *s)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	int wal;

	if (rc != SQLITE_OK)
		return open_err(s, rc, "enabling WAL");
	rc = sqlite3_step(st);
	wal = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return open_err(s, rc, "enabling WAL");
	if (!wal)
		return seterr(s, -EIO, "%s: cannot switch the store to WAL mode", s->file);
	return 0;
}

/*
 * Create the file ourselves, so its mode is 0600 whatever the umask (the
 * fchmod covers a umask that removes owner bits).  SQLite would create it
 * 0644 & ~umask, and its -wal/-shm files copy the main file's mode.
 * Returns 1 if created, 0 if it existed.
 */
static int create_file(vc_store *s)
{
	int fd = open(s->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0)
		return seterr(s, -errno, "%s: cannot create store: %s", s->file, strerror(errno));
	if (fchmod(fd, 0600) < 0 || fsync(fd) < 0) {
		int e = errno;

		close(fd);
		return seterr(s, -e, "%s: %s", s->file, strerror(e));
	}
	close(fd);
	return 1;
}

/* The new file's directory entry must survive a crash, as the data does. */
static void sync_dir(const char *file)
{
	char *dir = strdup(file);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	int fd;

	if (!dir)
		return;
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

/*
 * The writer lock: flock() on our own fd of the database file.  flock
 * locks belong to the open file description and do not interact with the
 * POSIX (fcntl) locks SQLite uses on the same file.
 */
static int take_writer_lock(vc_store *s)
{
	s->lockfd = open(s->file, O_RDONLY | O_CLOEXEC);
	if (s->lockfd < 0)
		return seterr(s, -errno, "%s: cannot open: %s", s->file, strerror(errno));
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		return seterr(s, -EBUSY, "%s: store is in use by another writer", s->file);
	return seterr(s, -errno, "%s: flock: %s", s->file, strerror(errno));
}

static int open_db(vc_store *s, const vc_actor *creator)
{
	int ro = s->flags & VC_OPEN_READONLY;
	int sqflags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
		      SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int64_t appid, ntables;
	int rc;

	rc = sqlite3_open_v2(s->file, &s->db, sqflags, NULL);
	if (rc != SQLITE_OK)
		return s->db ? open_err(s, rc, "open") : seterr(s, -ENOMEM, "out of memory");
	/* SQLite silently falls back to read-only when the file is not
	 * writable; a writer must know now, not at its first commit. */
	if (!ro && sqlite3_db_readonly(s->db, "main") == 1)
		return seterr(s, -EACCES, "%s: store file is not writable", s->file);
	if ((rc = configure(s)))
		return rc;
	if ((rc = query_int(s, "PRAGMA application_id", &appid)) ||
	    (rc = query_int(s, "SELECT count(*) FROM sqlite_master", &ntables)))
		return open_err(s, rc, "reading the schema");
	/* An empty database: a zero-length file (ours, just created, or one
	 * left by a crash during creation) or a blank SQLite file. */
	if (appid == 0 && ntables == 0) {
		if (!(s->flags & VC_OPEN_CREATE) || ro)
			return seterr(s, -EINVAL, "not a verconf store: %s: empty database",
				      s->file);
		/* A pre-existing empty file gets the mode a created one has; if
		 * it is not ours to chmod, its owner chose its mode. */
		if (chmod(s->file, 0600) < 0 && errno != EPERM)
			return seterr(s, -errno, "%s: chmod: %s", s->file, strerror(errno));
		if ((rc = enable_wal(s)) || (rc = init_store(s, creator)))
			return rc;
		if ((rc = query_int(s, "PRAGMA application_id", &appid)))
			return open_err(s, rc, "reading the header");
	}
	if ((rc = check_store(s, appid)))
		return rc;
	return ro ? 0 : enable_wal(s);
}

/*
 * The store's -wal file, opened once, with the handle.  While a connection
 * is open SQLite neither deletes nor replaces its log, so a log found
 * missing or replaced later was removed by someone else, with the changes
 * it held: they are not durable and cannot become so.  A log new to us may
 * be new on disk: its directory entry is synced too, as SQLite does at the
 * first sync of a log it created.  Only vc_open sets walfd and walino.
 */
static int wal_path(const vc_store *s, char *wal, size_t len)
{
	return snprintf(wal, len, "%s-wal", s->file) >= (int)len ? -ENAMETOOLONG : 0;
}

static int wal_open(vc_store *s)
{
	char wal[PATH_MAX];
	struct stat st;
	int rc = wal_path(s, wal, sizeof wal);

	if (rc)
		return seterr(s, rc, "%s: path too long", s->file);
	s->walfd = open(wal, O_RDONLY | O_CLOEXEC);
	if (s->walfd < 0 || fstat(s->walfd, &st) < 0)
		return seterr(s, -errno, "%s: cannot open the store's log: %s", wal,
			      strerror(errno));
	s->walino = st.st_ino;
	sync_dir(s->file);
	return 0;
}

static int wal_check(const vc_store *s)
{
	char wal[PATH_MAX];
	struct stat st;

	if (wal_path(s, wal, sizeof wal) || stat(wal, &st) < 0 || st.st_ino != s->walino)
		return -EIO;
	return 0;
}

int vc_open(const char *file, int flags, const vc_actor *creator, vc_store **out,
	    char *err, size_t errlen)
{
	vc_actor self;
	vc_store *s;
	int rc = 0;

	*out = NULL;
	s = calloc(1, sizeof *s);
	if (!s || !file || !(s->file = strdup(file))) {
		free(s);
		snprintf(err, errlen, "%s", file ? "out of memory" : "no store file given");
		return file ? -ENOMEM : -EINVAL;
	}
	s->flags = flags;
	s->lockfd = -1;
	s->walfd = -1;
	pthread_mutex_init(&s->sync_lock, NULL);
	creator = actor_or_self(creator, &self);
	if ((flags & VC_OPEN_READONLY) && (flags & (VC_OPEN_WRITER | VC_OPEN_CREATE)))
		rc = seterr(s, -EINVAL, "%s: read-only open cannot create or write", file);
	if (!rc && (flags & VC_OPEN_CREATE))
		rc = create_file(s);
	if (rc == 1)
		sync_dir(file);
	if (rc >= 0 && (flags & VC_OPEN_WRITER))
		rc = take_writer_lock(s);
	if (rc >= 0)
		rc = open_db(s, creator);
	if (rc >= 0 && (flags & VC_OPEN_SYNC_DEFERRED))
		rc = wal_open(s);
	/* A store created just now is durable before anyone uses it. */
	if (rc >= 0 && (rc = vc_sync(s, vc_change_mark(s))) < 0)
		seterr(s, rc, "%s: sync: %s", file, strerror(-rc));
	if (rc < 0) {
		snprintf(err, errlen, "%s", s->err);
		vc_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vc_close(vc_store *s)
{
	if (!s)
		return;
	/* Closing the last connection checkpoints (syncing the log first),
	 * but another process's read-only connection may be the last. */
	vc_sync(s, vc_change_mark(s));
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	ZSTD_freeCCtx(s->cctx);
	ZSTD_freeDCtx(s->dctx);
	free(s->key.buf);
	/*
	 * Only now, after sqlite3_close: closing any fd of a file drops all
	 * of this process's POSIX (fcntl) locks on it, including the ones
	 * SQLite holds through its own fd.  Closing the lock fd while the
	 * connection is open would silently leave the database unlocked
	 * (another process could then checkpoint or delete the WAL under us).
	 * For the same reason a process must not open a second handle with
	 * VC_OPEN_WRITER on a store it already has open: the failed handle's
	 * lock fd is closed while the first connection is live.
	 */
	if (s->lockfd >= 0)
		close(s->lockfd);
	/* SQLite keeps its WAL-mode locks in the -shm file and the database,
	 * none on the -wal file, so this fd holds nothing to lose. */
	if (s->walfd >= 0)
		close(s->walfd);
	pthread_mutex_destroy(&s->sync_lock);
	free(s->file);
	free(s);
}

uint64_t vc_change_mark(vc_store *s)
{
	return __atomic_load_n(&s->changes, __ATOMIC_SEQ_CST);
}

/*
 * Make every change up to mark durable.  Only the log needs syncing: a
 * committed transaction lives there until a checkpoint, which syncs the
 * log first and the database after.  The count is read before the
 * fdatasync, so a change committed while it runs waits for the next one.
 * Touches neither the connection nor s->err: another thread may be using
 * them.
 *
 * Every failure is final for the handle.  After a write-back error Linux
 * may drop the pages it could not write (ENOSPC as well as EIO) and report
 * success at the next fdatasync; WAL frames are checksum-chained, so a
 * lost change would also take every later one with it at recovery.  So
 * the log's durability is unknown for good: every later call fails too,
 * until the store is opened again.
 */
int vc_sync(vc_store *s, uint64_t mark)
{
	int rc = 0;

	if (!(s->flags & VC_OPEN_SYNC_DEFERRED))
		return 0;
	pthread_mutex_lock(&s->sync_lock);
	if (s->sync_error) {
		rc = s->sync_error;
	} else if (s->synced < mark) {
		uint64_t upto = vc_change_mark(s);

		if ((rc = wal_check(s)) == 0 && fdatasync(s->walfd) < 0)
			rc = -errno;
		if (rc)
			s->sync_error = rc;
		else
			s->synced = upto;
	}
	pthread_mutex_unlock(&s->sync_lock);
	return rc;
}

const char *vc_errmsg(const vc_store *s)
{
	return s ? s->err : "no store";
}

const char *vc_filename(const vc_store *s)
{
	return s ? s->file : NULL;
}

/* ---- reading ----------------------------------------------------------- */

int vc_lookup(vc_store *s, const char *path, vc_entry *out)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = check_path(s, path)) || (rc = prep(s, ST_LOOKUP, &st)))
		return rc;
	bind_str(st, 1, path);
	rc = step(s, st);
	if (rc > 0)
		read_entry(st, out);
	release(s, ST_LOOKUP, st);
	if (rc == 0)
		return seterr(s, -ENOENT, "%s: no such file or directory", path);
	return rc < 0 ? rc : 0;
}

static int get_version(vc_store *s, vc_id id, vc_version *out)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, ST_GETVER, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = step(s, st);
	if (rc > 0)
		read_version(st, out);
	release(s, ST_GETVER, st);
	if (rc == 0)
		return seterr(s, -ENOENT, "version %lld does not exist", (long long)id);
	return rc < 0 ? rc : 0;
}

int vc_get_version(vc_store *s, vc_id id, vc_version *out)
{
	return get_version(s, id, out);
}

static int copy_content(vc_store *s, sqlite3_stmt *st, vc_id id, void **buf, size_t *len)
{
	struct blobrow b, k;
	int rc;

	if (!strcmp((const char *)sqlite3_column_text(st, 0), "dir"))
		return seterr(s, -EISDIR, "version %lld is a directory", (long long)id);
	read_blobrow(st, 2, &b);
	read_blobrow(st, 7, &k);
	if (!b.id)
		return seterr(s, -EIO, "version %lld: blob %lld is missing", (long long)id,
			      (long long)sqlite3_column_int64(st, 1));
	if ((rc = blob_decode(s, &b, &k, buf))) {
		char what[40];

		snprintf(what, sizeof what, "version %lld", (long long)id);
		return err_context(s, rc, what);
	}
	*len = (size_t)b.size;
	return 0;
}

int vc_read_content(vc_store *s, vc_id id, void **buf, size_t *len)
{
	sqlite3_stmt *st;
	int rc;

	*buf = NULL;
	*len = 0;
	if ((rc = prep(s, ST_CONTENT, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = step(s, st);
	if (rc > 0)
		rc = copy_content(s, st, id, buf, len);
	else if (rc == 0)
		rc = seterr(s, -ENOENT, "version %lld does not exist", (long long)id);
	release(s, ST_CONTENT, st);
	return rc;
}

/*
 * Steps a listing statement, calling cb for each entry.  name_col is the
 * column given as name (p.name or p.path); times_from_version makes the
 * entry's times the version's created_ns (vc_tree_at).
 */
static int each_entry(vc_store *s, int id, sqlite3_stmt *st, int name_col,
		      int times_from_version, vc_entry_cb cb, void *ctx)
{
	vc_entry e;
	int rc, stop = 0;

	while (!stop && (rc = step(s, st)) > 0) {
		read_entry(st, &e);
		if (times_from_version)
			e.atime_ns = e.mtime_ns = e.ctime_ns = e.head.created_ns;
		stop = cb((const char *)sqlite3_column_text(st, name_col), &e, ctx);
	}
	release(s, id, st);
	return stop ? stop : rc;
}

int vc_list_dir(vc_store *s, const char *dir, vc_entry_cb cb, void *ctx)
{
	struct pinfo pi;
	sqlite3_stmt *st;
	int rc;

	if ((rc = check_path(s, dir)) || (rc = live_info(s, dir, &pi)))
		return rc;
	if (pi.kind != VC_DIR)
		return seterr(s, -ENOTDIR, "%s: not a directory", dir);
	if ((rc = prep(s, ST_LISTDIR, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pi.id);
	return each_entry(s, ST_LISTDIR, st, 21, 0, cb, ctx);
}

int vc_list_versions(vc_store *s, const char *path, int limit, vc_version_cb cb, void *ctx)
{
	struct pinfo pi;
	sqlite3_stmt *st;
	vc_version v;
	int rc, stop = 0;

	if ((rc = check_path(s, path)) || (rc = path_info(s, path, &pi)) ||
	    (rc = prep(s, ST_LISTVER, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pi.id);
	sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
	while (!stop && (rc = step(s, st)) > 0) {
		read_version(st, &v);
		stop = cb(&v, ctx);
	}
	release(s, ST_LISTVER, st);
	return stop ? stop : rc;
}

int vc_list_paths(vc_store *s, int include_deleted, vc_entry_cb cb, void *ctx)
{
	int id = include_deleted ? ST_PATHS_ALL : ST_PATHS_LIVE;
	sqlite3_stmt *st;
	int rc;

	if ((rc = prep(s, id, &st)))
		return rc;
	return each_entry(s, id, st, 2, 0, cb, ctx);
}

int vc_last_seq(vc_store *s, vc_id *seq)
{
	sqlite3_stmt *st;
	int rc;

	*seq = 0;
	if ((rc = prep(s, ST_LASTSEQ, &st)))
		return rc;
	rc = step(s, st);
	if (rc > 0)
		*seq = sqlite3_column_int64(st, 0);
	release(s, ST_LASTSEQ, st);
	return rc < 0 ? rc : 0;
}

int vc_seq_at_time(vc_store *s, int64_t time_ns, vc_id *seq)
{
	sqlite3_stmt *st;
	int rc;

	*seq = 0;
	if ((rc = prep(s, ST_SEQTIME, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, time_ns);
	rc = step(s, st);
	*seq = rc > 0 ? sqlite3_column_int64(st, 0) : 0;
	release(s, ST_SEQTIME, st);
	return rc < 0 ? rc : 0;
}

/* -EINVAL for seq < min, -ENOENT beyond the journal. */
static int check_seq(vc_store *s, vc_id seq, vc_id min)
{
	vc_id last;
	int rc;

	if (seq < min)
		return seterr(s, -EINVAL, "invalid sequence number %lld", (long long)seq);
	if ((rc = vc_last_seq(s, &last)))
		return rc;
	if (seq > last)
		return seterr(s, -ENOENT, "sequence number %lld is beyond the journal (%lld)",
			      (long long)seq, (long long)last);
	return 0;
}

int vc_tree_at(vc_store *s, vc_id seq, vc_entry_cb cb, void *ctx)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = check_seq(s, seq, 0)) || (rc = prep(s, ST_TREE, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	return each_entry(s, ST_TREE, st, 2, 1, cb, ctx);
}

/* The journal query for a filter: only the conditions asked for, so each
 * one can use its index (path_id, time). */
static void journal_sql(const vc_journal_filter *f, char *sql, size_t n)
{
	snprintf(sql, n,
		 "SELECT j.seq, j.time_ns, j.action, j.path_id, p.path, j.from_version,"
		 " j.to_version, j.actor_uid, j.actor_gid, j.actor_pid, j.actor_comm"
		 " FROM journal j JOIN paths p ON p.id = j.path_id WHERE 1%s%s%s%s%s"
		 " ORDER BY j.seq %s LIMIT ?6",
		 f->path ? " AND p.path = ?1" : "", f->since_ns ? " AND j.time_ns >= ?2" : "",
		 f->until_ns ? " AND j.time_ns <= ?3" : "", f->uid >= 0 ? " AND j.actor_uid = ?4" : "",
		 f->after_seq ? " AND j.seq > ?5" : "", f->oldest_first ? "ASC" : "DESC");
}

static void read_journal(sqlite3_stmt *st, vc_journal_entry *j)
{
	memset(j, 0, sizeof *j);
	j->seq = sqlite3_column_int64(st, 0);
	j->time_ns = sqlite3_column_int64(st, 1);
	j->action = name_index(action_names, NNAMES(action_names), sqlite3_column_text(st, 2));
	j->path_id = sqlite3_column_int64(st, 3);
	col_str(st, 4, j->path, sizeof j->path);
	j->from_version = sqlite3_column_int64(st, 5);
	j->to_version = sqlite3_column_int64(st, 6);
	j->actor.uid = (uint32_t)sqlite3_column_int64(st, 7);
	j->actor.gid = (uint32_t)sqlite3_column_int64(st, 8);
	j->actor.pid = (int32_t)sqlite3_column_int64(st, 9);
	col_str(st, 10, j->actor.comm, sizeof j->actor.comm);
}

int vc_list_journal(vc_store *s, const vc_journal_filter *f, vc_journal_cb cb, void *ctx)
{
	vc_journal_filter all = { .uid = -1 };
	vc_journal_entry j;
	sqlite3_stmt *st;
	char sql[1024];
	int rc, stop = 0;

	if (!f)
		f = &all;
	if (f->path && (rc = check_path(s, f->path)))
		return rc;
	journal_sql(f, sql, sizeof sql);
	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL)) != SQLITE_OK)
		return dberr(s, rc, "journal query");
	if (f->path)
		bind_str(st, 1, f->path);
	sqlite3_bind_int64(st, 2, f->since_ns);
	sqlite3_bind_int64(st, 3, f->until_ns);
	sqlite3_bind_int64(st, 4, f->uid);
	sqlite3_bind_int64(st, 5, f->after_seq);
	sqlite3_bind_int(st, 6, f->limit > 0 ? f->limit : -1);
	while (!stop && (rc = step(s, st)) > 0) {
		read_journal(st, &j);
		stop = cb(&j, ctx);
	}
	sqlite3_finalize(st);
	return stop ? stop : rc;
}

/* ---- commit ------------------------------------------------------------ */

static int check_req(vc_store *s, const vc_commit_req *req)
{
	int rc;

	if (!req)
		return seterr(s, -EINVAL, "no commit request");
	if ((rc = check_path(s, req->path)))
		return rc;
	if (!name_of(kind_names, NNAMES(kind_names), (int)req->kind) ||
	    !name_of(op_names, NNAMES(op_names), (int)req->op) ||
	    !name_of(status_names, NNAMES(status_names), (int)req->status))
		return seterr(s, -EINVAL, "%s: invalid kind, op or status", req->path);
	if (req->kind != VC_DIR && !req->same_content_as && req->len && !req->data)
		return seterr(s, -EINVAL, "%s: no data", req->path);
	if (!*req->path && req->kind != VC_DIR)
		return seterr(s, -EEXIST, "the root is a directory");
	return 0;
}

/* 1 if committing c with req's metadata would change nothing at head. */
static int same_as_head(vc_store *s, vc_id head, const vc_commit_req *req,
			const struct content *c)
{
	vc_version v;
	int rc = get_version(s, head, &v);

	if (rc)
		return rc;
	return v.kind == req->kind && v.mode == (req->mode & 07777) && v.uid == req->uid &&
	       v.gid == req->gid && !memcmp(v.sha256, c->sha256, 32);
}

static int commit_tx(vc_store *s, const vc_commit_req *req, vc_id *out, int *created)
{
	vc_actor self;
	const vc_actor *a = actor_or_self(req->actor, &self);
	struct content c;
	struct pinfo pi;
	vc_id ppid = 0, vid;
	int rejected = req->status == VC_REJECTED;
	int rc;

	rc = path_info(s, req->path, &pi);
	if (rc && rc != -ENOENT)
		return rc;
	/* A rejected version moves no name: it needs its path's history,
	 * not a live parent directory nor the kind the path has now (a writer
	 * whose directory a restore removed while it wrote keeps its bytes). */
	if (*req->path && (rc = parent_of(s, req->path, rejected, &ppid)))
		return rc;
	if (!rejected && pi.head && pi.kind != req->kind)
		return seterr(s, -EEXIST, "%s: exists as a %s", req->path, vc_kind_name(pi.kind));
	if ((rc = req_content(s, req, &c)))
		return rc;
	/* Rejected versions are always recorded: they are the audit trail of
	 * refused writes, even when their content happens to equal head. */
	if (pi.head && req->status == VC_ACCEPTED) {
		if ((rc = same_as_head(s, pi.head, req, &c)) < 0)
			return rc;
		if (rc) {
			if (out)
				*out = pi.head;
			return 0;
		}
	}
	if (req->kind != VC_DIR && (rc = blob_put(s, pi.id, &c)))
		return rc;
	if ((rc = path_ensure(s, req->path, ppid, &pi)) ||
	    (rc = insert_version(s, req, pi.id, &c, a, &vid)))
		return rc;
	if (req->status == VC_ACCEPTED && (rc = move_head(s, pi.id, pi.head, vid,
							  VC_ACT_COMMIT, a)))
		return rc;
	if (out)
		*out = vid;
	if (created)
		*created = 1;
	return 0;
}

int vc_commit(vc_store *s, const vc_commit_req *req, vc_id *out, int *created)
{
	int rc;

	if (out)
		*out = 0;
	if (created)
		*created = 0;
	if ((rc = check_req(s, req)) || (rc = tx_begin(s)))
		return rc;
	return tx_end(s, commit_tx(s, req, out, created));
}

/* ---- head moves -------------------------------------------------------- */

/* Every deleted ancestor directory of path back to its last accepted
 * directory version, top down; a live ancestor must be a directory. */
static int revive_parents(vc_store *s, const char *path, enum vc_action act,
			  const vc_actor *a)
{
	char anc[VC_PATH_MAX + 1];
	sqlite3_stmt *st;
	struct pinfo pi;
	vc_id vid;
	int rc;

	for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		memcpy(anc, path, (size_t)(p - path));
		anc[p - path] = 0;
		if ((rc = path_info(s, anc, &pi)))
			return rc;
		if (pi.head && pi.kind != VC_DIR)
			return seterr(s, -ENOTDIR, "%s: not a directory", anc);
		if (pi.head)
			continue;
		if ((rc = prep(s, ST_LASTDIR, &st)))
			return rc;
		sqlite3_bind_int64(st, 1, pi.id);
		rc = step(s, st);
		vid = rc > 0 ? sqlite3_column_int64(st, 0) : 0;
		release(s, ST_LASTDIR, st);
		if (rc == 0)
			return seterr(s, -ENOENT, "%s: was never a directory", anc);
		if (rc < 0 || (rc = move_head(s, pi.id, 0, vid, act, a)))
			return rc;
	}
	return 0;
}

/* Make accepted version v the head of its path. */
static int make_head(vc_store *s, const vc_version *v, enum vc_action act, const vc_actor *a)
{
	struct pinfo pi;
	int rc;

	if ((rc = path_info(s, v->path, &pi)))
		return rc;
	if (pi.head == v->id)
		return 0;
	/* A directory may turn into a file only when nothing is below it. */
	if (pi.head && pi.kind == VC_DIR && v->kind != VC_DIR &&
	    (rc = check_empty(s, v->path, pi.id)))
		return rc;
	if ((rc = revive_parents(s, v->path, act, a)))
		return rc;
	return move_head(s, pi.id, pi.head, v->id, act, a);
}

static int activate_tx(vc_store *s, vc_id id, const char *expect_path, const vc_actor *a)
{
	vc_version v;
	int rc = get_version(s, id, &v);

	if (rc)
		return rc;
	if (expect_path && strcmp(expect_path, v.path))
		return seterr(s, -EXDEV, "version %lld belongs to \"%s\", not \"%s\"",
			      (long long)id, v.path, expect_path);
	if (v.status == VC_REJECTED)
		return seterr(s, -EINVAL, "version %lld was rejected (%s) and cannot be activated",
			      (long long)id, v.reason);
	return make_head(s, &v, VC_ACT_ACTIVATE, a);
}

int vc_activate(vc_store *s, vc_id id, const char *expect_path, const vc_actor *a)
{
	vc_actor self;
	int rc;

	if ((expect_path && (rc = check_path(s, expect_path))) || (rc = tx_begin(s)))
		return rc;
	return tx_end(s, activate_tx(s, id, expect_path, actor_or_self(a, &self)));
}

/* Tombstone a live path (checks shared by delete and rollback). */
static int delete_head(vc_store *s, const char *path, const struct pinfo *pi,
		       enum vc_action act, const vc_actor *a)
{
	int rc;

	if (!*path)
		return seterr(s, -EBUSY, "the root directory cannot be deleted");
	if (pi->kind == VC_DIR && (rc = check_empty(s, path, pi->id)))
		return rc;
	return move_head(s, pi->id, pi->head, 0, act, a);
}

static int rollback_tx(vc_store *s, const char *path, const vc_actor *a, vc_id *now)
{
	sqlite3_stmt *st;
	struct pinfo pi;
	vc_version v;
	vc_id target;
	int rc;

	if ((rc = path_info(s, path, &pi)) || (rc = prep(s, ST_LASTJ, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, pi.id);
	rc = step(s, st);
	target = rc > 0 ? sqlite3_column_int64(st, 0) : 0;
	release(s, ST_LASTJ, st);
	if (rc == 0)
		return seterr(s, -ENOENT, "%s: no journal entry to roll back", path);
	if (rc < 0)
		return rc;
	*now = target;
	if (!target)
		return pi.head ? delete_head(s, path, &pi, VC_ACT_ROLLBACK, a) : 0;
	if ((rc = get_version(s, target, &v)))
		return rc;
	return make_head(s, &v, VC_ACT_ROLLBACK, a);
}

int vc_rollback(vc_store *s, const char *path, const vc_actor *a, vc_id *now)
{
	vc_actor self;
	vc_id dummy;
	int rc;

	if (!now)
		now = &dummy;
	*now = 0;
	if ((rc = check_path(s, path)) || (rc = tx_begin(s)))
		return rc;
	rc = tx_end(s, rollback_tx(s, path, actor_or_self(a, &self), now));
	if (rc)
		*now = 0;
	return rc;
}

int vc_delete(vc_store *s, const char *path, const vc_actor *a)
{
	vc_actor self;
	struct pinfo pi;
	int rc;

	if ((rc = check_path(s, path)))
		return rc;
	if (!*path)
		return seterr(s, -EBUSY, "the root directory cannot be deleted");
	if ((rc = tx_begin(s)))
		return rc;
	rc = live_info(s, path, &pi);
	if (!rc)
		rc = delete_head(s, path, &pi, VC_ACT_DELETE, actor_or_self(a, &self));
	return tx_end(s, rc);
}

/* ---- restore ----------------------------------------------------------- */

struct move {
	vc_id pid, now, then;
};

/* Every path's head now and at seq, in path order. */
static int collect_moves(vc_store *s, vc_id seq, struct move **out, size_t *n)
{
	struct move *m = NULL, *tmp;
	size_t cap = 0;
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	*out = NULL;
	if ((rc = prep(s, ST_RESTORE, &st)))
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	while ((rc = step(s, st)) > 0) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(tmp = realloc(m, cap * sizeof *m))) {
				rc = seterr(s, -ENOMEM, "out of memory");
				break;
			}
			m = tmp;
		}
		m[*n].pid = sqlite3_column_int64(st, 0);
		m[*n].now = sqlite3_column_int64(st, 1);
		m[(*n)++].then = sqlite3_column_int64(st, 2);
	}
	release(s, ST_RESTORE, st);
	*out = m;
	return rc;
}

/*
 * Deletions first, deepest path first, then the other moves in path
 * order, parents before children: every intermediate journal state is a
 * consistent tree, for vc_tree_at and vc_restore of a seq inside this one.
 */
static int restore_tx(vc_store *s, vc_id seq, const vc_actor *a)
{
	struct move *m;
	size_t n;
	int rc = collect_moves(s, seq, &m, &n);

	for (size_t i = n; rc == 0 && i-- > 0;)
		if (m[i].now && !m[i].then)
			rc = move_head(s, m[i].pid, m[i].now, 0, VC_ACT_RESTORE, a);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (m[i].then && m[i].then != m[i].now)
			rc = move_head(s, m[i].pid, m[i].now, m[i].then, VC_ACT_RESTORE, a);
	free(m);
	return rc;
}

int vc_restore(vc_store *s, vc_id seq, const vc_actor *a)
{
	vc_actor self;
	int rc;

	if ((rc = tx_begin(s)))
		return rc;
	rc = check_seq(s, seq, 1);
	if (!rc)
		rc = restore_tx(s, seq, actor_or_self(a, &self));
	return tx_end(s, rc);
}

/* ---- rename and link --------------------------------------------------- */

/* rename(2)'s checks of the target. */
static int rename_target(vc_store *s, const struct pinfo *from, const char *to,
			 const struct pinfo *tgt, int flags)
{
	if (!tgt->head)
		return 0;
	if (flags & VC_RENAME_NOREPLACE)
		return seterr(s, -EEXIST, "%s: exists", to);
	if (from->kind == VC_DIR && tgt->kind != VC_DIR)
		return seterr(s, -ENOTDIR, "%s: not a directory", to);
	if (from->kind != VC_DIR && tgt->kind == VC_DIR)
		return seterr(s, -EISDIR, "%s: is a directory", to);
	return tgt->kind == VC_DIR ? check_empty(s, to, tgt->id) : 0;
}

/* One path of a rename: a new version at newpath copied from old's head. */
static int move_one(vc_store *s, const char *newpath, vc_id oldhead, const vc_actor *a)
{
	struct pinfo pi;
	vc_id ppid, vid;
	int rc;

	if ((rc = vc_path_check(newpath)))
		return seterr(s, rc, "%.200s...: path too long", newpath);
	rc = path_info(s, newpath, &pi);
	if ((rc && rc != -ENOENT) || (rc = parent_dir(s, newpath, &ppid)) ||
	    (rc = path_ensure(s, newpath, ppid, &pi)) ||
	    (rc = clone_version(s, pi.id, oldhead, VC_OP_RENAME, a, &vid)))
		return rc;
	return move_head(s, pi.id, pi.head, vid, VC_ACT_RENAME, a);
}

/* from and its live descendants, as (pid, head, path) triples. */
struct moved {
	vc_id pid, head;
	char *path;
};

static int push_moved(vc_store *s, struct moved **m, size_t *n, size_t *cap, vc_id pid,
		      vc_id head, const char *path)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct moved *t = realloc(*m, nc * sizeof **m);

		if (!t)
			return seterr(s, -ENOMEM, "out of memory");
		*m = t;
		*cap = nc;
	}
	if (!((*m)[*n].path = strdup(path)))
		return seterr(s, -ENOMEM, "out of memory");
	(*m)[*n].pid = pid;
	(*m)[(*n)++].head = head;
	return 0;
}

static int collect_subtree(vc_store *s, const char *from, const struct pinfo *pi,
			   struct moved **m, size_t *n)
{
	size_t cap = 0;
	sqlite3_stmt *st;
	int rc;

	*m = NULL;
	*n = 0;
	if ((rc = push_moved(s, m, n, &cap, pi->id, pi->head, from)) || pi->kind != VC_DIR)
		return rc;
	if ((rc = prep(s, ST_DESC, &st)))
		return rc;
	bind_str(st, 1, from);
	while ((rc = step(s, st)) > 0 &&
	       !(rc = push_moved(s, m, n, &cap, sqlite3_column_int64(st, 0),
				 sqlite3_column_int64(st, 2),
				 (const char *)sqlite3_column_text(st, 1))))
		;
	release(s, ST_DESC, st);
	return rc;
}

static int rename_tx(vc_store *s, const char *from, const char *to, int flags,
		     const vc_actor *a)
{
	char newpath[2 * VC_PATH_MAX + 2];
	struct pinfo fi, ti;
	struct moved *m = NULL;
	size_t n = 0, flen = strlen(from);
	vc_id ppid;
	int rc;

	if ((rc = live_info(s, from, &fi)))
		return rc;
	if (!strcmp(from, to))
		return 0;
	if (is_below(to, from))
		return seterr(s, -EINVAL, "cannot move %s into itself (%s)", from, to);
	if ((rc = parent_dir(s, to, &ppid)))
		return rc;
	rc = path_info(s, to, &ti);
	if ((rc && rc != -ENOENT) || (rc = rename_target(s, &fi, to, &ti, flags)))
		return rc;
	rc = collect_subtree(s, from, &fi, &m, &n);
	/* New paths parents first (path order), then the old ones are
	 * tombstoned children first. */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		snprintf(newpath, sizeof newpath, "%s%s", to, m[i].path + flen);
		rc = move_one(s, newpath, m[i].head, a);
	}
	for (size_t i = n; rc == 0 && i-- > 0;)
		rc = move_head(s, m[i].pid, m[i].head, 0, VC_ACT_RENAME, a);
	for (size_t i = 0; i < n; i++)
		free(m[i].path);
	free(m);
	return rc;
}

int vc_rename(vc_store *s, const char *from, const char *to, int flags, const vc_actor *a)
{
	vc_actor self;
	int rc;

	if ((rc = check_path(s, from)) || (rc = check_path(s, to)))
		return rc;
	if (!*from || !*to)
		return seterr(s, -EBUSY, "the root directory cannot be renamed or replaced");
	if ((rc = tx_begin(s)))
		return rc;
	return tx_end(s, rename_tx(s, from, to, flags, actor_or_self(a, &self)));
}

static int link_tx(vc_store *s, const char *from, const char *to, const vc_actor *a,
		   vc_id *out)
{
	struct pinfo fi, ti;
	vc_id ppid;
	int rc;

	if ((rc = live_info(s, from, &fi)))
		return rc;
	if (fi.kind == VC_DIR)
		return seterr(s, -EPERM, "%s: cannot link a directory", from);
	rc = path_info(s, to, &ti);
	if (rc && rc != -ENOENT)
		return rc;
	if (ti.head)
		return seterr(s, -EEXIST, "%s: exists", to);
	if ((rc = parent_dir(s, to, &ppid)) || (rc = path_ensure(s, to, ppid, &ti)) ||
	    (rc = clone_version(s, ti.id, fi.head, VC_OP_LINK, a, out)))
		return rc;
	return move_head(s, ti.id, 0, *out, VC_ACT_COMMIT, a);
}

int vc_link(vc_store *s, const char *from, const char *to, const vc_actor *a, vc_id *out)
{
	vc_actor self;
	vc_id dummy;
	int rc;

	if (!out)
		out = &dummy;
	*out = 0;
	if ((rc = check_path(s, from)) || (rc = check_path(s, to)))
		return rc;
	if (!*to)
		return seterr(s, -EEXIST, "the root directory exists");
	if ((rc = tx_begin(s)))
		return rc;
	rc = tx_end(s, link_tx(s, from, to, actor_or_self(a, &self), out));
	if (rc)
		*out = 0;
	return rc;
}

int vc_set_times(vc_store *s, const char *path, int64_t atime_ns, int64_t mtime_ns)
{
	struct pinfo pi;
	sqlite3_stmt *st;
	int rc;

	if ((rc = check_path(s, path)) || (rc = tx_begin(s)))
		return rc;
	if (!(rc = live_info(s, path, &pi)) && !(rc = prep(s, ST_SETTIMES, &st))) {
		sqlite3_bind_int64(st, 1, pi.id);
		sqlite3_bind_int64(st, 2, atime_ns);
		sqlite3_bind_int64(st, 3, mtime_ns);
		sqlite3_bind_int64(st, 4, s->now);
		rc = run(s, ST_SETTIMES, st);
	}
	return tx_end(s, rc);
}

/* ---- fsck -------------------------------------------------------------- */

struct fsck {
	vc_store *s;
	vc_problem_cb cb;
	void *ctx;
	int count;
};

__attribute__((format(printf, 2, 3)))
static void problem(struct fsck *f, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	f->count++;
	if (f->cb)
		f->cb(line, f->ctx);
}

/* Each row of sql (one text column) is a problem; "ok" rows are not.  A
 * query that fails is itself a problem, and checking goes on. */
static void fsck_query(struct fsck *f, const char *sql)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(f->s->db, sql, -1, &st, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *txt = (const char *)sqlite3_column_text(st, 0);

		rc = SQLITE_OK;

		if (txt && strcmp(txt, "ok"))
			problem(f, "%s", txt);
	}
	if (rc != SQLITE_DONE)
		problem(f, "check failed: %s (%.60s...)", sqlite3_errmsg(f->s->db), sql);
	sqlite3_finalize(st);
}

/* One blob: decoded (a delta's base must exist and be a keyframe), its
 * recorded hash and size against the content. */
static void fsck_blob(struct fsck *f, sqlite3_stmt *st)
{
	struct blobrow b, k;
	uint8_t sha[32];
	void *buf;

	read_blobrow(st, 0, &b);
	read_blobrow(st, 5, &k);
	if (blob_decode(f->s, &b, &k, &buf)) {
		problem(f, "%s (SHA-256 not verified)", f->s->err);
		return;
	}
	if (hash_data(f->s, buf, (size_t)b.size, sha) || !b.sha256 || memcmp(sha, b.sha256, 32))
		problem(f, "blob %lld: SHA-256 of the data does not match", (long long)b.id);
	free(buf);
}

static void fsck_blobs(struct fsck *f)
{
	sqlite3_stmt *st;
	/* In id order, so the deltas of one keyframe mostly follow it and
	 * find it decoded in the keyframe cache. */
	int rc = sqlite3_prepare_v2(f->s->db, "SELECT " BLOB_COLS " FROM blobs b"
				    " LEFT JOIN blobs k ON k.id = " DELTA_BASE("b") " ORDER BY b.id",
				    -1, &st, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		fsck_blob(f, st);
	}
	if (rc != SQLITE_DONE)
		problem(f, "blob check failed: %s", sqlite3_errmsg(f->s->db));
	sqlite3_finalize(st);
}

/* Reference and invariant checks, each a query whose rows describe problems. */
static const char *const fsck_sql[] = {
	"SELECT printf('version %d: path %d does not exist', id, path_id) FROM versions"
	" WHERE path_id NOT IN (SELECT id FROM paths)",
	"SELECT printf('version %d: blob %d does not exist', id, blob_id) FROM versions"
	" WHERE blob_id IS NOT NULL AND blob_id NOT IN (SELECT id FROM blobs)",
	"SELECT printf('version %d: a %s %s a blob', id, kind,"
	" CASE WHEN blob_id IS NULL THEN 'without' ELSE 'with' END) FROM versions"
	" WHERE (kind = 'dir') != (blob_id IS NULL)",
	"SELECT printf('version %d: size %d, blob %d has %d', v.id, v.size, b.id, b.size)"
	" FROM versions v JOIN blobs b ON b.id = v.blob_id WHERE v.size != b.size",
	"SELECT printf('version %d: source %d does not exist', id, source) FROM versions"
	" WHERE source IS NOT NULL AND source NOT IN (SELECT id FROM versions)",
	"SELECT printf('version %d: invalid status %Q', id, status) FROM versions"
	" WHERE status NOT IN ('accepted', 'rejected')",
	"SELECT printf('journal %d: path %d does not exist', seq, path_id) FROM journal"
	" WHERE path_id NOT IN (SELECT id FROM paths)",
	"SELECT printf('journal %d: version %d is not one of path %d', seq, v, path_id) FROM"
	" (SELECT seq, path_id, from_version AS v FROM journal UNION ALL"
	"  SELECT seq, path_id, to_version FROM journal) j WHERE v IS NOT NULL AND v != 0"
	" AND NOT EXISTS (SELECT 1 FROM versions x WHERE x.id = j.v AND x.path_id = j.path_id)",
	"SELECT printf('path %Q: head %d is not an accepted version of it', path, head)"
	" FROM paths p WHERE head IS NOT NULL AND NOT EXISTS (SELECT 1 FROM versions v"
	" WHERE v.id = p.head AND v.path_id = p.id AND v.status = 'accepted')",
	"SELECT printf('path %Q: parent %d does not exist', path, parent) FROM paths"
	" WHERE path != '' AND (parent IS NULL OR parent NOT IN (SELECT id FROM paths))",
	"SELECT printf('path %Q: live but its parent is not a live directory', p.path)"
	" FROM paths p JOIN paths q ON q.id = p.parent LEFT JOIN versions v ON v.id = q.head"
	" WHERE p.head IS NOT NULL AND v.kind IS NOT 'dir'",
	"SELECT printf('path %Q: head %d differs from its last journal entry', path, head)"
	" FROM paths p WHERE head IS NOT (SELECT nullif(to_version, 0) FROM journal j"
	" WHERE j.path_id = p.id ORDER BY seq DESC LIMIT 1)",
	"SELECT 'the root directory is missing' WHERE NOT EXISTS (SELECT 1 FROM paths p"
	" JOIN versions v ON v.id = p.head WHERE p.path = '' AND v.kind = 'dir')",
};

int vc_fsck(vc_store *s, vc_problem_cb cb, void *ctx)
{
	struct fsck f = { s, cb, ctx, 0 };
	char sql[512];

	fsck_query(&f, "PRAGMA integrity_check");
	fsck_blobs(&f);
	for (int i = 0; i < NNAMES(fsck_sql); i++)
		fsck_query(&f, fsck_sql[i]);
	snprintf(sql, sizeof sql,
		 "SELECT printf('immutability trigger %%s is missing', column1) FROM (VALUES %s)"
		 " WHERE column1 NOT IN (SELECT name FROM sqlite_master WHERE type = 'trigger')",
		 trigger_list_sql);
	fsck_query(&f, sql);
	seterr(s, 0, "%d problem%s found", f.count, f.count == 1 ? "" : "s");
	return f.count;
}
