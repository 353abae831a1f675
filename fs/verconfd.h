/*
 * verconfd: the FUSE daemon.  Shared declarations of its parts:
 *   main.c     options, store opening, import, mount, the session loop
 *   nodes.c    the in-memory inode table (what the kernel has looked up)
 *   drafts.c   uncommitted bytes of files open for writing, and commit
 *   ops.c      the FUSE low-level operations on the tree
 *   meta.c     the virtual .control file and .versions/ tree
 *   gate.c     the JSON gate and log lines
 *   notify.c   kernel invalidations, sent before the replies that wait for them
 *
 * The model (see README "Design"): every committed version of a file gets
 * its own inode.  Versions never change, so their page cache never needs to
 * be invalidated (keep_cache); a commit or a switch only re-points the name,
 * which the daemon tells the kernel with an entry invalidation, exactly what
 * a rename-replace does on a local filesystem.  A handle opened earlier
 * keeps reading its own version.
 *
 * Writers never open a version inode: the kernel would truncate and resize
 * it under its readers (O_TRUNC, every write past the end).  An open for
 * writing on a version inode is answered ESTALE after the path's draft is
 * reserved for that process; the kernel looks the name up again, this time
 * getting the path's draft node, and retries the open there.  All write
 * handles of a path share that draft and use direct I/O, so draft bytes
 * never enter a cache that readers share.
 *
 * Locking: one mutex (fs.lock) guards the node table, the drafts and the
 * store handle.  Kernel notifications are sent only after it is released:
 * the kernel may hold a directory lock while it waits for a reply that
 * needs fs.lock.  So is the store's sync of a change (sync=full): a
 * commit holds fs.lock only while SQLite writes, not while the disk
 * flushes, and readers' opens never queue behind a fdatasync.
 */
#ifndef VERCONFD_H
#define VERCONFD_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store.h"

enum validate_mode { VALIDATE_STRICT, VALIDATE_WARN, VALIDATE_OFF };

/* Options and global state. */
struct fs {
	pthread_mutex_t lock;
	vc_store *store;
	struct fuse_session *se;
	char *store_path;   /* absolute */
	char *mountpoint;   /* absolute */
	enum validate_mode validate;
	bool sync_normal;
	bool sync_failed;   /* a sync of the store failed: changes refused */
	bool showmeta;
	bool noimport;
	bool foreground;
	size_t max_file_size;
	uid_t owner_uid;    /* the mounting user: owns .control */
	gid_t owner_gid;
	char last_error[512];
	char last_rejection[512];
};
extern struct fs fs;

/* ---- nodes.c -------------------------------------------------------- */

enum node_kind {
	N_DIR,     /* a live directory, keyed by path */
	N_FILE,    /* one committed version of a file or symlink */
	N_DRAFT,   /* a path with open writers (or created, not yet committed) */
	N_CONTROL, /* /.control */
	N_VROOT,   /* /.versions */
	N_VDIR,    /* /.versions/PATH: children or version ids of PATH */
	N_VFILE,   /* /.versions/PATH/ID: one version, read-only */
};

struct node {
	fuse_ino_t ino;
	enum node_kind kind;
	char *path;       /* current path; NULL once unlinked (N_FILE) */
	char *last_path;  /* the path it had when its name went away */
	vc_id version;    /* N_FILE, N_VFILE: the version shown */
	uint64_t nlookup;
	bool keyed;       /* reachable by key (see node_rekey) */
	bool cache_filled; /* N_FILE: its bytes were given to the kernel (fill_cache) */
	pid_t told_to_look_again; /* N_DRAFT: the last reader sent back (see open_for_read) */
	struct stat attr; /* snapshot served by getattr */
};

void nodes_init(void);
struct node *node_by_ino(fuse_ino_t ino);
/* Find or create the node for a key; bumps nlookup.  path is copied. */
struct node *node_get(enum node_kind kind, const char *path, vc_id version);
struct node *node_find(enum node_kind kind, const char *path, vc_id version);
void node_forget(struct node *n, uint64_t nlookup);
/* Change what a node shows, with the same bytes: rename, chmod, chown. */
void node_rekey(struct node *n, enum node_kind kind, const char *path, vc_id version);
/* The name is gone (unlink, rmdir, replaced): reachable by inode number only. */
void node_detach(struct node *n);
/* Call fn for every node whose path is p or lies below p. */
void nodes_under(const char *p, void (*fn)(struct node *n, void *ctx), void *ctx);

/* ---- drafts.c ------------------------------------------------------- */

#define PIDSET_MAX 8
struct pidset {
	pid_t pid[PIDSET_MAX];
};
void pidset_add(struct pidset *s, pid_t pid);
void pidset_remove(struct pidset *s, pid_t pid);
bool pidset_has(const struct pidset *s, pid_t pid);

struct draft {
	char *path;
	char *buf;
	size_t len, cap;
	int refs;          /* write handles sharing it */
	bool dirty;        /* bytes not yet committed */
	bool pending;      /* path has no committed version yet (create) */
	bool orphaned;     /* no longer the path's draft: never commit */
	bool superseded;   /* orphaned by a .control switch: commit as rejected */
	vc_id head_noted;  /* the path's head before a .control switch (0: none) */
	enum vc_op op;     /* what the next commit records */
	uint32_t mode, uid, gid; /* for a pending file */
	struct timespec created;
	int64_t atime_ns, mtime_ns; /* set while dirty, applied after the commit; -1: none */
	struct pidset writers;    /* hold write handles (for their fstat) */
	struct pidset redirected; /* told to look again (see redirect_writer) */
	int reserved;      /* refs held for opens being redirected (see ops.c) */
	int failed;        /* a write failed (-EFBIG): never commit these bytes */
	vc_actor actor;    /* the last process that opened or wrote it */
	pid_t actor_thread; /* the thread actor was taken from (spares /proc reads) */
	int writer_killed; /* a writer was killed (this signal) before it closed it */
	struct timespec reserved_at;
};

struct draft *draft_find(const char *path);
/* Open (or join) the draft of path; base is the live content when new.
 * redirected: the opener holds a reservation (see draft_reserve). */
int draft_open(const char *path, bool truncate, bool redirected, struct draft **out);
int draft_create(const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		 struct draft **out);
void draft_put(struct draft *d);
/* Make path resolve to its draft node before a writer's retried open. */
int draft_reserve(const char *path, struct draft **out);
bool draft_drop_stale_reservation(struct draft *d);
int draft_write(struct draft *d, const char *buf, size_t size, off_t off, bool append,
		size_t *written);
int draft_truncate(struct draft *d, off_t size);
/* Commit d if dirty.  On success *moved tells whether the head moved. */
int draft_commit(struct draft *d, const vc_actor *a, bool *moved);
/* At shutdown, a draft its writers had not finished: its bytes go to
 * history as a rejected version, never live. */
int draft_keep_unfinished(struct draft *d, const vc_actor *a);
/* Rename/unlink bookkeeping: an unlinked draft's handles write into nothing. */
void drafts_rename(const char *from, const char *to);
void draft_unlink(const char *path);
/* rename over path: its draft's handles write into the replaced file
 * (nothing); returns the writers still being redirected to it. */
struct pidset draft_replace(const char *path);
struct invals;
/* Around a .control switch: note each draft's head before, and after it
 * supersede the drafts it switched (see drafts.c). */
void drafts_note_heads(void);
void drafts_supersede_moved(bool restore, struct invals *iv);
/* A growing array of drafts (an entry that finds no memory is left out). */
struct draft_list {
	struct draft **d;
	size_t n;
};
void draft_list_add(struct draft_list *l, struct draft *d);
/* Visit pending drafts directly inside directory dir. */
void drafts_pending_in(const char *dir, void (*fn)(struct draft *d, void *ctx), void *ctx);

/* ---- gate.c --------------------------------------------------------- */

/* 0 if path may become live with these bytes; else fills reason. */
int gate_check(const char *path, const char *buf, size_t len, char *reason, size_t rlen);
bool is_json_path(const char *path);
/* Log a rejected version and keep it as .control's last-rejection. */
void note_rejection(const char *path, vc_id id, const char *reason, const vc_actor *a);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void actor_of(fuse_req_t req, vc_actor *a);
int killing_signal(pid_t tid);
void actor_self(vc_actor *a);

/* ---- notify.c: invalidations and the replies that wait for them ---- */

/* Directory entries to invalidate once fs.lock is released. */
struct inval {
	fuse_ino_t parent;
	char *name;       /* NULL: drop the attributes of inode parent */
};
struct invals {
	size_t n, cap;
	struct inval *item;
};
/* The kernel asks for ino's attributes again (no directory lock needed). */
void inval_node_attrs(struct invals *iv, fuse_ino_t ino);
void inval_path(struct invals *iv, const char *path);
void invals_free(struct invals *iv);

enum reply_kind { REPLY_ERR, REPLY_WRITE, REPLY_ATTR, REPLY_ENTRY, REPLY_NONE };
struct reply {
	fuse_req_t req;
	enum reply_kind kind;
	int err;        /* negative errno: reply with that error */
	size_t written; /* REPLY_WRITE */
	struct stat attr; /* REPLY_ATTR */
	fuse_ino_t ino;   /* REPLY_ATTR: the inode whose attributes it carries */
	double timeout;
	struct fuse_entry_param entry; /* REPLY_ENTRY */
};
/* Take fs.lock; release it, then wait until the store changes made
 * meanwhile are durable (0, or the sync's negative errno). */
void fs_lock(void);
int fs_unlock(void);
/* fs_unlock, then send iv's notifications and the reply, in that order,
 * from the notifier thread (see notify.c); a failed sync fails the reply. */
void unlock_reply(struct invals *iv, const struct reply *r);
/* The same with the reply sent first: for a request during which the
 * kernel holds the lock of the directory whose entries iv drops. */
void unlock_reply_first(struct invals *iv, const struct reply *r);
/* Send iv's notifications from the notifier thread, with no reply
 * waiting for them (fs.lock not held). */
void invalidate_later(struct invals *iv);
int notify_start(void);
bool notify_quiesce(int max_ms);

/* ---- helpers shared by ops.c and meta.c ----------------------------- */

char *path_join(const char *dir, const char *name);
const char *path_base(const char *path);
char *path_dir(const char *path);
/*
 * Inode numbers shown by stat are not the kernel's node ids.  A path keeps
 * its number across versions, as a file edited in place does, so tools
 * that compare st_ino before and after opening (vim) see the same file,
 * while a link (a clone: another path) has its own.  Versions under
 * .versions/ have theirs.  Node ids, and the numbers of the virtual files
 * and of files not yet committed, stay below 2^40.
 */
#define PATH_INO(path_id) ((1ULL << 40) + (uint64_t)(path_id))
#define VERSION_INO(version_id) ((2ULL << 40) + (uint64_t)(version_id))
void attr_from_entry(struct stat *st, const vc_entry *e);
void attr_from_version(struct stat *st, const vc_version *v);
extern const double ENTRY_TIMEOUT;

/* ---- meta.c --------------------------------------------------------- */

#define CONTROL_NAME ".control"
#define VERSIONS_NAME ".versions"
void meta_init(void);
int meta_lookup_root(const char *name, struct fuse_entry_param *e);
int meta_lookup(struct node *parent, const char *name, struct fuse_entry_param *e);
int meta_getattr(struct node *n, struct stat *st);
int meta_open(struct node *n, struct fuse_file_info *fi);
/* .control: the whole status text, malloc'd; the caller slices it. */
int meta_read(struct node *n, struct fuse_file_info *fi, char **buf, size_t *len);
int meta_write(fuse_req_t req, const char *buf, size_t size, struct invals *iv);
void meta_release(struct fuse_file_info *fi);
int meta_readdir(struct node *n, void (*add)(void *ctx, const char *name, struct stat *st),
		 void *ctx);

/* main.c */
int import_tree(const char *dir);
/* 0 while the store file is the one opened and its syncs work; -EIO
 * (logged) once it is gone or a sync lost writes. */
int store_check(void);
/* Log a change the store refused for a reason of its own (full, I/O),
 * note it as .control's last-error, and return rc. */
int store_result(int rc, const char *what, const char *path);

#endif
