/*
 * Drafts: the uncommitted bytes of a file open for writing.  All write
 * handles of one path share one draft, as they would share an ordinary
 * file, so O_APPEND writers all land and each reads the others' bytes.
 * Readers never see a draft.  Caller holds fs.lock.
 */
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "verconfd.h"

static void *by_path;

static int cmp_path(const void *a, const void *b)
{
	return strcmp(((const struct draft *)a)->path, ((const struct draft *)b)->path);
}

struct draft *draft_find(const char *path)
{
	struct draft key = { .path = (char *)path };
	void *hit = tfind(&key, &by_path, cmp_path);
	return hit ? *(struct draft **)hit : NULL;
}

static struct draft *draft_new(const char *path)
{
	struct draft *d = calloc(1, sizeof(*d));
	if (!d || !(d->path = strdup(path))) {
		free(d);
		return NULL;
	}
	d->refs = 1;
	d->op = VC_OP_WRITE;
	d->atime_ns = d->mtime_ns = -1;
	clock_gettime(CLOCK_REALTIME, &d->created);
	/* One draft per path: callers look for one first. */
	void *slot = tsearch(d, &by_path, cmp_path);
	if (!slot || *(struct draft **)slot != d) {
		free(d->path);
		free(d);
		return NULL;
	}
	return d;
}

static int draft_grow(struct draft *d, size_t len)
{
	if (len <= d->cap)
		return 0;
	size_t cap = d->cap ? d->cap : 4096;
	while (cap < len)
		cap *= 2;
	char *b = realloc(d->buf, cap);
	if (!b)
		return -ENOMEM;
	d->buf = b;
	d->cap = cap;
	return 0;
}

static int draft_load_head(struct draft *d)
{
	vc_entry e;
	int rc = vc_lookup(fs.store, d->path, &e);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (e.head.kind != VC_FILE)
		return -EISDIR;
	void *buf;
	size_t len;
	rc = vc_read_content(fs.store, e.head.id, &buf, &len);
	if (rc)
		return rc;
	free(d->buf);
	d->buf = buf;
	d->len = d->cap = len;
	return 0;
}

int draft_open(const char *path, bool truncate, bool redirected, struct draft **out)
{
	struct draft *d = draft_find(path);
	if (d && redirected && d->reserved) {
		/* The open a reservation was made for: it takes that ref. */
		d->reserved--;
	} else if (d) {
		d->refs++;
	} else {
		d = draft_new(path);
		if (!d)
			return -ENOMEM;
		int rc = truncate ? 0 : draft_load_head(d);
		if (rc) {
			draft_put(d);
			return rc;
		}
	}
	/* O_TRUNC marks the draft dirty even when the file is already empty:
	 * the commit finds the bytes identical and records nothing. */
	if (truncate) {
		d->len = 0;
		d->failed = 0;
		d->dirty = true;
		if (d->op != VC_OP_CREATE)
			d->op = VC_OP_TRUNCATE;
	}
	*out = d;
	return 0;
}

/* A reservation holds a ref, so the draft outlives the handles being
 * released while the redirected open is on its way back. */
int draft_reserve(const char *path, struct draft **out)
{
	struct draft *d;
	int rc = draft_open(path, false, false, &d);
	if (rc)
		return rc;
	d->reserved++;
	clock_gettime(CLOCK_MONOTONIC, &d->reserved_at);
	*out = d;
	return 0;
}

/* An open that was told ESTALE retries at once; a reservation that no open
 * took within a few seconds (the caller died) is dropped. */
bool draft_drop_stale_reservation(struct draft *d)
{
	struct timespec now;
	if (!d->reserved)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - d->reserved_at.tv_sec < 5)
		return false;
	bool last = d->refs == d->reserved;
	memset(&d->redirected, 0, sizeof(d->redirected));
	for (int n = d->reserved; n > 0; n--) {
		d->reserved--;
		draft_put(d);
	}
	return last;
}

int draft_create(const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		 struct draft **out)
{
	struct draft *d = draft_new(path);
	if (!d)
		return -ENOMEM;
	d->pending = true;
	d->dirty = true;
	d->op = VC_OP_CREATE;
	d->mode = mode;
	d->uid = uid;
	d->gid = gid;
	*out = d;
	return 0;
}

void draft_put(struct draft *d)
{
	if (--d->refs > 0)
		return;
	if (!d->orphaned)
		tdelete(d, &by_path, cmp_path);
	free(d->buf);
	free(d->path);
	free(d);
}

/* A handful of pids is enough: beyond that a writer's fstat shows the
 * live size, as any reader's does, and a writer that cannot be recorded
 * for redirection gets ESTALE from open. */
void pidset_add(struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < PIDSET_MAX; i++)
		if (!s->pid[i]) {
			s->pid[i] = pid;
			return;
		}
}

void pidset_remove(struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < PIDSET_MAX; i++)
		if (s->pid[i] == pid) {
			s->pid[i] = 0;
			return;
		}
}

bool pidset_has(const struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < PIDSET_MAX; i++)
		if (pid && s->pid[i] == pid)
			return true;
	return false;
}

int draft_write(struct draft *d, const char *buf, size_t size, off_t off, bool append,
		size_t *written)
{
	if (append)
		off = (off_t)d->len;
	if (off < 0)
		return -EINVAL;
	if ((size_t)off + size > fs.max_file_size) {
		d->failed = -EFBIG;
		return -EFBIG;
	}
	int rc = draft_grow(d, (size_t)off + size);
	if (rc)
		return rc;
	/* A write past the end leaves a hole of zeros, as on disk. */
	if ((size_t)off > d->len)
		memset(d->buf + d->len, 0, (size_t)off - d->len);
	memcpy(d->buf + off, buf, size);
	if ((size_t)off + size > d->len)
		d->len = (size_t)off + size;
	d->dirty = true;
	if (d->op != VC_OP_CREATE)
		d->op = VC_OP_WRITE;
	*written = size;
	return 0;
}

int draft_truncate(struct draft *d, off_t size)
{
	if (size < 0)
		return -EINVAL;
	if ((size_t)size > fs.max_file_size) {
		d->failed = -EFBIG;
		return -EFBIG;
	}
	int rc = draft_grow(d, (size_t)size);
	if (rc)
		return rc;
	if ((size_t)size > d->len)
		memset(d->buf + d->len, 0, (size_t)size - d->len);
	d->len = (size_t)size;
	/* A writer that sets the size itself after a failed write knows what
	 * it holds: its draft may commit again. */
	d->failed = 0;
	d->dirty = true;
	if (d->op != VC_OP_CREATE)
		d->op = VC_OP_TRUNCATE;
	return 0;
}

/* Metadata of the next version: the live head's, or the creator's. */
static int commit_meta(struct draft *d, vc_commit_req *req)
{
	vc_entry e;
	int rc = vc_lookup(fs.store, d->path, &e);
	if (rc == 0 && e.head.kind == VC_FILE) {
		req->mode = e.head.mode;
		req->uid = e.head.uid;
		req->gid = e.head.gid;
		return 0;
	}
	if (rc && rc != -ENOENT)
		return rc;
	req->mode = d->mode;
	req->uid = d->uid;
	req->gid = d->gid;
	return 0;
}

/* Commit d; reject, if set, is why it is kept as a rejected version
 * whatever its bytes (then the result is -ESTALE: its writers' work did
 * not go live). */
static int commit(struct draft *d, const vc_actor *a, bool *moved, const char *reject)
{
	*moved = false;
	if (d->orphaned && !d->superseded)
		return 0;
	/* Every writer of a superseded draft hears it, not only the first
	 * whose close stored its bytes. */
	if (!d->dirty)
		return d->superseded ? -ESTALE : 0;
	/* A write that failed (EFBIG) left the draft short of what the
	 * writer meant: it never becomes live, until an O_TRUNC open or a
	 * truncate sets its content anew. */
	if (d->failed)
		return d->failed;
	if (d->len > fs.max_file_size)
		return -EFBIG;
	int rc = store_check();
	if (rc)
		return rc;
	vc_commit_req req = {
		.path = d->path, .kind = VC_FILE, .op = d->op,
		.data = d->buf, .len = d->len, .status = VC_ACCEPTED, .actor = a,
	};
	/* A superseded draft keeps the mode and owner of the file its
	 * writers opened (drafts_supersede_moved). */
	rc = d->superseded ? 0 : commit_meta(d, &req);
	if (rc)
		return rc;
	if (d->superseded) {
		req.mode = d->mode;
		req.uid = d->uid;
		req.gid = d->gid;
	}
	char reason[VC_REASON_MAX];
	bool bad = gate_check(d->path, d->buf, d->len, reason, sizeof(reason)) != 0;
	if (reject) {
		snprintf(reason, sizeof(reason), "%s", reject);
		req.status = VC_REJECTED;
		req.reason = reason;
	} else if (bad && fs.validate == VALIDATE_STRICT) {
		req.status = VC_REJECTED;
		req.reason = reason;
	}
	vc_id id;
	int created;
	rc = vc_commit(fs.store, &req, &id, &created);
	if (rc) {
		snprintf(fs.last_error, sizeof(fs.last_error), "commit %s: %s", d->path,
			 vc_errmsg(fs.store));
		log_msg(LOG_ERR, "commit of %s failed: %s", d->path, vc_errmsg(fs.store));
		return rc == -ENOSPC ? -ENOSPC : -EIO;
	}
	/* Rejected or not, these bytes are now in history: nothing is lost,
	 * and the next close does not store them a second time. */
	d->dirty = false;
	if (req.status == VC_REJECTED) {
		note_rejection(d->path, id, reason, a);
		return reject ? -ESTALE : -EINVAL;
	}
	if (bad)
		log_msg(LOG_WARNING, "accepted %s version %lld despite: %s (validate=warn)",
			d->path, (long long)id, reason);
	d->pending = false;
	d->op = VC_OP_WRITE;
	*moved = created;
	if ((d->atime_ns >= 0 || d->mtime_ns >= 0) &&
	    vc_set_times(fs.store, d->path, d->atime_ns, d->mtime_ns) != 0)
		log_msg(LOG_WARNING, "times of %s not set: %s", d->path, vc_errmsg(fs.store));
	d->atime_ns = d->mtime_ns = -1;
	if (created)
		log_msg(LOG_INFO, "commit %s version %lld (%zu bytes) by uid %u pid %d %s",
			d->path, (long long)id, d->len, a->uid, a->pid, a->comm);
	return 0;
}

int draft_commit(struct draft *d, const vc_actor *a, bool *moved)
{
	char why[VC_REASON_MAX];
	if (d->superseded)
		snprintf(why, sizeof(why),
			 "written through a descriptor opened before a .control switch of %s",
			 d->path);
	else if (d->writer_killed)
		snprintf(why, sizeof(why), "its writer was killed (signal %d) before closing it",
			 d->writer_killed);
	int rc = commit(d, a, moved, d->superseded || d->writer_killed ? why : NULL);
	if (!d->dirty)
		d->writer_killed = 0;
	return rc;
}

int draft_keep_unfinished(struct draft *d, const vc_actor *a)
{
	bool moved;
	int rc = commit(d, a, &moved, "still being written when verconfd stopped");
	return rc == -ESTALE ? 0 : rc;
}

void draft_unlink(const char *path)
{
	struct draft *d = draft_find(path);
	if (!d)
		return;
	tdelete(d, &by_path, cmp_path);
	d->orphaned = true;
}

struct pidset draft_replace(const char *path)
{
	struct pidset pids = { 0 };
	struct draft *d = draft_find(path);
	if (!d)
		return pids;
	pids = d->redirected;
	draft_unlink(path);
	/* Its reservations go with it: the caller makes new ones. */
	int n = d->reserved;
	d->reserved = 0;
	memset(&d->redirected, 0, sizeof(d->redirected));
	while (n-- > 0)
		draft_put(d);
	return pids;
}

/*
 * A .control switch (activate, rollback, restore) moves heads under open
 * writers.  A draft holds the bytes of the head its writers opened plus
 * their writes: committed at their close it would undo the switch, and
 * every writer opening after it (an append: >>) would join it and undo it
 * too.  So a draft whose path's head the switch moved is superseded: it
 * leaves the path, whose next writers start from the new head, and its
 * own bytes, if its writers commit them, are kept in history as a
 * rejected version (nothing is lost, nothing goes live), with the mode
 * and owner of the file they opened; their close or fsync fails with
 * ESTALE.  Writers being redirected (see draft_reserve) go to the path's
 * new draft.  A switch that leaves a path's head as it was leaves its
 * draft alone, but a file being created (pending) is superseded by every
 * restore (the whole tree goes back to what it was, and the file was not
 * in it) and by a switch that removed its directory.  The writers'
 * inode (the path's draft node) goes with the old draft, as an unlinked
 * file's would: fstat, fchmod and ftruncate through it reach that draft
 * only, and the path's next writers get a new one.  The kernel forgets
 * the name, which for a file being created it would otherwise keep.
 */
static vc_id head_of(const char *path, vc_entry *e)
{
	return vc_lookup(fs.store, path, e) == 0 ? e->head.id : 0;
}

static void note_head(const void *p, VISIT which, void *closure)
{
	(void)closure;
	struct draft *d = *(struct draft *const *)p;
	vc_entry e;
	if (which == postorder || which == leaf)
		d->head_noted = head_of(d->path, &e);
}

void drafts_note_heads(void)
{
	twalk_r(by_path, note_head, NULL);
}

void draft_list_add(struct draft_list *l, struct draft *d)
{
	struct draft **grown = realloc(l->d, (l->n + 1) * sizeof(*grown));
	if (!grown)
		return;
	l->d = grown;
	l->d[l->n++] = d;
}

struct moved_ctx {
	struct draft_list list;
	bool restore;
};

static bool parent_is_dir(const char *path)
{
	char *dir = path_dir(path);
	vc_entry e;
	bool ok = dir && vc_lookup(fs.store, dir, &e) == 0 && e.head.kind == VC_DIR;
	free(dir);
	return ok;
}

static bool switched(const struct draft *d, bool restore)
{
	vc_entry e;
	if (head_of(d->path, &e) != d->head_noted)
		return true;
	return d->pending && (restore || !parent_is_dir(d->path));
}

static void collect_moved(const void *p, VISIT which, void *closure)
{
	struct moved_ctx *c = closure;
	struct draft *d = *(struct draft *const *)p;
	if ((which == postorder || which == leaf) && switched(d, c->restore))
		draft_list_add(&c->list, d);
}

static void supersede(struct draft *d, struct invals *iv)
{
	struct node *dn = node_find(N_DRAFT, d->path, 0);
	if (dn)
		node_detach(dn);
	inval_path(iv, d->path);
	vc_version v;
	if (!d->pending && d->head_noted && vc_get_version(fs.store, d->head_noted, &v) == 0) {
		d->mode = v.mode;
		d->uid = v.uid;
		d->gid = v.gid;
	}
	/* Hold d: draft_replace drops its reservations' refs, which may be
	 * all it has (then nobody will commit it, and it goes here). */
	char *path = strdup(d->path);
	d->refs++;
	struct pidset pids = draft_replace(d->path);
	d->superseded = true;
	for (size_t i = 0; path && i < PIDSET_MAX; i++) {
		struct draft *nd;
		if (pids.pid[i] && draft_reserve(path, &nd) == 0)
			pidset_add(&nd->redirected, pids.pid[i]);
	}
	if (path)
		log_msg(LOG_WARNING, "open writers of %s no longer write to it: .control switched it"
			" (what they commit goes to history, not live)", path);
	free(path);
	draft_put(d);
}

void drafts_supersede_moved(bool restore, struct invals *iv)
{
	struct moved_ctx c = { .restore = restore };
	twalk_r(by_path, collect_moved, &c);
	for (size_t i = 0; i < c.list.n; i++)
		supersede(c.list.d[i], iv);
	free(c.list.d);
}

struct rename_ctx {
	const char *from, *to;
	size_t flen;
	struct draft **hits;
	size_t n;
};

static void collect_renamed(const void *p, VISIT which, void *closure)
{
	struct rename_ctx *r = closure;
	struct draft *d = *(struct draft *const *)p;
	if (which != postorder && which != leaf)
		return;
	if (strncmp(d->path, r->from, r->flen) == 0 &&
	    (d->path[r->flen] == '\0' || d->path[r->flen] == '/')) {
		struct draft **h = realloc(r->hits, (r->n + 1) * sizeof(*h));
		if (!h)
			return;
		r->hits = h;
		r->hits[r->n++] = d;
	}
}

void drafts_rename(const char *from, const char *to)
{
	struct rename_ctx r = { .from = from, .to = to, .flen = strlen(from) };
	twalk_r(by_path, collect_renamed, &r);
	for (size_t i = 0; i < r.n; i++) {
		struct draft *d = r.hits[i];
		char *np = d->path[r.flen] ? path_join(to, d->path + r.flen + 1) : strdup(to);
		if (!np)
			continue;
		tdelete(d, &by_path, cmp_path);
		free(d->path);
		d->path = np;
		/* A draft already open at the target is replaced, as the file it
		 * belonged to is: its handles keep writing into nothing. */
		draft_unlink(np);
		tsearch(d, &by_path, cmp_path);
	}
	free(r.hits);
}

struct pending_ctx {
	const char *dir;
	size_t dlen;
	void (*fn)(struct draft *d, void *ctx);
	void *ctx;
};

static void visit_pending(const void *p, VISIT which, void *closure)
{
	struct pending_ctx *c = closure;
	struct draft *d = *(struct draft *const *)p;
	if ((which != postorder && which != leaf) || !d->pending || d->orphaned)
		return;
	const char *rest = d->path;
	if (c->dlen) {
		if (strncmp(d->path, c->dir, c->dlen) != 0 || d->path[c->dlen] != '/')
			return;
		rest = d->path + c->dlen + 1;
	}
	if (!strchr(rest, '/'))
		c->fn(d, c->ctx);
}

void drafts_pending_in(const char *dir, void (*fn)(struct draft *d, void *ctx), void *ctx)
{
	struct pending_ctx c = { .dir = dir, .dlen = strlen(dir), .fn = fn, .ctx = ctx };
	twalk_r(by_path, visit_pending, &c);
}
