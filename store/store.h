/*
 * verconf content store: one SQLite file holding every version of every path.
 *
 * The model follows git's object store:
 *   - blobs are content addressed by SHA-256 and never change;
 *   - versions are immutable rows (path, kind, blob, metadata, actor, status);
 *   - each path has a movable pointer, its head (the version it shows now,
 *     or none when the path is deleted: a tombstone that keeps history);
 *   - the journal is an append-only log of head moves (a reflog), whose
 *     sequence number is the store's clock.
 * The schema is documented in store/README.md.
 *
 * This library knows nothing of FUSE.  It is not thread safe: one vc_store
 * handle must be used by one thread at a time (the daemon serialises calls
 * with a mutex).  Every call that can fail returns 0 or a negative errno
 * value, and leaves a readable message in vc_errmsg().
 *
 * Paths are relative to the store root, without a leading slash, components
 * separated by '/': "config.json", "conf.d/10-db.json".  The root itself is
 * the empty string "".  A path is refused with -EINVAL when a component is
 * empty, "." or "..", and with -ENAMETOOLONG when a component is longer than
 * VC_NAME_MAX bytes or the whole path longer than VC_PATH_MAX bytes.
 */
#ifndef VERCONF_STORE_H
#define VERCONF_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VC_NAME_MAX 255
#define VC_PATH_MAX 4095
#define VC_COMM_MAX 16 /* process name, as /proc/PID/comm (15 chars + NUL) */
#define VC_REASON_MAX 256

typedef struct vc_store vc_store;
typedef int64_t vc_id; /* version ids, path ids and journal sequence numbers */

enum vc_kind { VC_FILE = 1, VC_DIR = 2, VC_SYMLINK = 3 };

enum vc_status { VC_ACCEPTED = 0, VC_REJECTED = 1 };

/* What made a version.  Stored as text (vc_op_name) so the sqlite3 shell
 * shows it plainly. */
enum vc_op {
	VC_OP_CREATE = 1,
	VC_OP_WRITE,
	VC_OP_TRUNCATE,
	VC_OP_CHMOD,
	VC_OP_CHOWN,
	VC_OP_LINK,
	VC_OP_RENAME,
	VC_OP_SYMLINK,
	VC_OP_IMPORT,
	VC_OP_MKDIR,
};

/* Why a head moved.  Stored as text (vc_action_name). */
enum vc_action {
	VC_ACT_COMMIT = 1, /* a new version became head */
	VC_ACT_ACTIVATE,   /* an existing version id was made head */
	VC_ACT_ROLLBACK,   /* back to the version shown before the last move */
	VC_ACT_DELETE,     /* unlink/rmdir: head becomes none */
	VC_ACT_RESTORE,    /* whole-tree restore to a sequence number */
	VC_ACT_RENAME,     /* rename: source path loses its head, target gains one */
};

/* Who did it: the process that made the FUSE request, or the tool's caller. */
typedef struct vc_actor {
	uint32_t uid;
	uint32_t gid;
	int32_t pid;
	char comm[VC_COMM_MAX];
} vc_actor;

/* One immutable version, as read back from the store. */
typedef struct vc_version {
	vc_id id;
	vc_id path_id;
	char path[VC_PATH_MAX + 1];
	enum vc_kind kind;
	enum vc_op op;
	enum vc_status status;
	char reason[VC_REASON_MAX]; /* empty unless rejected */
	int64_t size;               /* bytes of content (0 for directories) */
	uint32_t mode;              /* permission bits only (07777) */
	uint32_t uid;
	uint32_t gid;
	vc_id source;               /* version it was cloned/renamed/imported from, 0 if none */
	int64_t created_ns;         /* CLOCK_REALTIME when committed */
	uint8_t sha256[32];         /* of the content; all zero for directories */
	vc_actor actor;
} vc_version;

/* A live path: its head version plus the path's own mutable times. */
typedef struct vc_entry {
	vc_version head;
	int64_t mtime_ns; /* set by commits and head moves, and by vc_set_times */
	int64_t atime_ns;
	int64_t ctime_ns; /* any change to the path */
} vc_entry;

/* One head move. */
typedef struct vc_journal_entry {
	vc_id seq;
	int64_t time_ns;
	enum vc_action action;
	vc_id path_id;
	char path[VC_PATH_MAX + 1];
	vc_id from_version; /* 0: the path showed nothing before */
	vc_id to_version;   /* 0: the path shows nothing after (deleted) */
	vc_actor actor;
} vc_journal_entry;

/* ---- opening ---------------------------------------------------------- */

enum vc_open_flags {
	VC_OPEN_CREATE = 1 << 0,   /* create the file (mode 0600) if missing */
	VC_OPEN_READONLY = 1 << 1, /* query only; allowed while a writer serves */
	VC_OPEN_WRITER = 1 << 2,   /* take the exclusive writer lock (the daemon);
	                              -EBUSY if another writer holds it */
	VC_OPEN_SYNC_NORMAL = 1 << 3, /* synchronous=NORMAL instead of FULL */
	VC_OPEN_SYNC_DEFERRED = 1 << 4, /* durable only at vc_sync(): see below */
};

/*
 * Open (or create) a store.  On failure *out is NULL and err holds a
 * message: a file that is not a store (-EINVAL, "not a verconf store"), a
 * newer schema (-EPROTONOSUPPORT), a corrupt file (-EIO), an unwritable
 * location (-EACCES/-EROFS/...), or a store held by another writer (-EBUSY).
 * A new store has a root directory "" (mode 0755, owned by root_uid/gid of
 * the creating actor) as its first version.
 */
int vc_open(const char *file, int flags, const vc_actor *creator, vc_store **out,
	    char *err, size_t errlen);
void vc_close(vc_store *s);

/*
 * Deferred durability (VC_OPEN_SYNC_DEFERRED): a change is committed, and
 * visible to every reader, without waiting for the disk; vc_sync() then
 * makes every change up to a mark durable with one fdatasync of the
 * write-ahead log, as synchronous=FULL would have done inside the commit.
 * A caller that holds its own lock around store calls can so wait for the
 * disk after releasing it, and concurrent waiters share one fdatasync.
 *
 * vc_change_mark() counts the changes this handle committed; vc_sync() may
 * run on one thread while another thread uses s for anything else (the two
 * are the only functions that may).  Without the flag every change is
 * durable when its call returns (or, with VC_OPEN_SYNC_NORMAL alone, at
 * SQLite's next checkpoint) and vc_sync() returns 0 at once.  A failure
 * of vc_sync() is final for the handle: the disk may have lost writes (or
 * someone removed the -wal file, -EIO), and every later call returns the
 * same error (see store.c).
 */
uint64_t vc_change_mark(vc_store *s);
int vc_sync(vc_store *s, uint64_t mark);
const char *vc_errmsg(const vc_store *s);
const char *vc_filename(const vc_store *s);

/* ---- reading ---------------------------------------------------------- */

/* The live entry at path.  -ENOENT if the path never existed or is deleted. */
int vc_lookup(vc_store *s, const char *path, vc_entry *out);

/* Any version by id (live, old, deleted path's, rejected).  -ENOENT if unknown. */
int vc_get_version(vc_store *s, vc_id id, vc_version *out);

/* A version's content into a malloc'd buffer (*buf may be NULL when *len is
 * 0; free() it), decoded whatever the blob's codec.  Directories have no
 * content: -EISDIR; a blob that does not decode: -EIO. */
int vc_read_content(vc_store *s, vc_id id, void **buf, size_t *len);

/* Callbacks return 0 to go on, anything else to stop; that value is then
 * returned by the listing function. */
typedef int (*vc_entry_cb)(const char *name, const vc_entry *e, void *ctx);
typedef int (*vc_version_cb)(const vc_version *v, void *ctx);
typedef int (*vc_journal_cb)(const vc_journal_entry *j, void *ctx);

/* Live children of directory dir, in name order.  -ENOENT / -ENOTDIR. */
int vc_list_dir(vc_store *s, const char *dir, vc_entry_cb cb, void *ctx);

/* Every version of path (rejected ones too), newest first; limit <= 0: all.
 * -ENOENT if the path never existed. */
int vc_list_versions(vc_store *s, const char *path, int limit, vc_version_cb cb, void *ctx);

/* Every path ever known, in path order; name is the full path; e->head.id is
 * 0 for deleted paths when include_deleted (then only path/path_id are set). */
int vc_list_paths(vc_store *s, int include_deleted, vc_entry_cb cb, void *ctx);

typedef struct vc_journal_filter {
	const char *path;    /* NULL: all paths */
	int64_t since_ns;    /* 0: no bound */
	int64_t until_ns;    /* 0: no bound */
	int64_t uid;         /* -1: any actor */
	vc_id after_seq;     /* only seq > after_seq; 0: all */
	int limit;           /* <= 0: no limit */
	int oldest_first;    /* default newest first */
} vc_journal_filter;
int vc_list_journal(vc_store *s, const vc_journal_filter *f, vc_journal_cb cb, void *ctx);

/* Sequence number of the newest journal entry (0 when empty). */
int vc_last_seq(vc_store *s, vc_id *seq);
/* Newest sequence number whose time is <= time_ns (0 if none). */
int vc_seq_at_time(vc_store *s, int64_t time_ns, vc_id *seq);

/* The tree as it was right after journal entry seq: every path live then,
 * with the version it showed, in path order.  name is the full path.  The
 * times in e are the version's created_ns. */
int vc_tree_at(vc_store *s, vc_id seq, vc_entry_cb cb, void *ctx);

/* ---- writing (each call one transaction, durable when it returns) ------ */

typedef struct vc_commit_req {
	const char *path;
	enum vc_kind kind;
	enum vc_op op;
	const void *data;   /* file bytes or symlink target; ignored for dirs */
	size_t len;
	vc_id same_content_as; /* nonzero: reuse this version's blob, data ignored */
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	vc_id source;       /* link/rename/import origin, 0 if none */
	enum vc_status status;
	const char *reason; /* for VC_REJECTED */
	const vc_actor *actor;
} vc_commit_req;

/*
 * Commit a new version of req->path.  An accepted version becomes head (a
 * journal "commit" entry); a rejected one is stored but the head does not
 * move.  The parent directory must be live (-ENOENT, -ENOTDIR).  A kind
 * different from the live head's is -EEXIST (unlink first).  When content,
 * kind, mode, uid and gid equal the live head's, nothing is written and
 * *out is the head's id with *created = 0 (idempotent rewrites make no
 * noise); otherwise *created = 1.  out/created may be NULL.
 */
int vc_commit(vc_store *s, const vc_commit_req *req, vc_id *out, int *created);

/*
 * Make version id the head of its own path (rollback, roll-forward, or the
 * restore of a deleted path; deleted ancestor directories are brought back
 * with their last accepted version).  expect_path, if not NULL, must be
 * that version's path.  Errors, each distinct:
 *   -ENOENT unknown id, -EINVAL rejected version, -EXDEV id of another path.
 * Activating the current head is a no-op (0, no journal entry).
 */
int vc_activate(vc_store *s, vc_id id, const char *expect_path, const vc_actor *a);

/* Back to the version path showed before its last head move (if it showed
 * nothing, the path is deleted).  *now gets the new head (0: deleted).
 * -ENOENT if the path has no journal entry. */
int vc_rollback(vc_store *s, const char *path, const vc_actor *a, vc_id *now);

/* Every path back to what it was right after journal entry seq, in one
 * transaction.  -ENOENT if seq is beyond the journal. */
int vc_restore(vc_store *s, vc_id seq, const vc_actor *a);

/* Tombstone path (unlink/rmdir).  A directory with live children: -ENOTEMPTY. */
int vc_delete(vc_store *s, const char *path, const vc_actor *a);

enum vc_rename_flags { VC_RENAME_NOREPLACE = 1 };
/*
 * Rename from to to.  to's history continues with a new version (op rename,
 * source = from's head); from records its removal (journal "rename").  A
 * directory moves with everything below it.  Replacing: file over file and
 * dir over empty dir are allowed; -EEXIST with VC_RENAME_NOREPLACE,
 * -ENOTEMPTY, -EISDIR, -ENOTDIR, -EINVAL (dir into itself) as rename(2).
 */
int vc_rename(vc_store *s, const char *from, const char *to, int flags, const vc_actor *a);

/* to becomes a copy-on-write clone of from's live version (op link).
 * -EEXIST if to is live, -EPERM if from is a directory. */
int vc_link(vc_store *s, const char *from, const char *to, const vc_actor *a, vc_id *out);

/* Times only; no version, no journal entry.  A negative value leaves that
 * time as it is. */
int vc_set_times(vc_store *s, const char *path, int64_t atime_ns, int64_t mtime_ns);

/* ---- checking --------------------------------------------------------- */

/* Integrity check: PRAGMA integrity_check, every blob decoded (a delta's
 * base must exist and be a keyframe) and its SHA-256 recomputed, every
 * reference resolved, immutability triggers present.  cb gets one
 * line per problem.  Returns the number of problems (>= 0) or -errno. */
typedef int (*vc_problem_cb)(const char *problem, void *ctx);
int vc_fsck(vc_store *s, vc_problem_cb cb, void *ctx);

/* ---- names ------------------------------------------------------------ */

const char *vc_op_name(enum vc_op op);
const char *vc_action_name(enum vc_action a);
const char *vc_kind_name(enum vc_kind k);
/* 0, or -EINVAL / -ENAMETOOLONG as described above. */
int vc_path_check(const char *path);

#endif
