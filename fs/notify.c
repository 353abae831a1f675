/*
 * Kernel notifications, and the replies that must wait for them.
 *
 * A commit or a .control switch must be visible to every reader when the
 * caller's close(2) or write(2) returns, so the reply is sent only after
 * the kernel has dropped the stale entries.  But an entry invalidation
 * takes the directory's lock in the kernel, and a rename, create or
 * unlink in that directory holds that lock while it waits for a reply of
 * ours.  If worker threads waited in notifications, enough of them could
 * leave no worker to answer that request: a deadlock.  So workers never
 * notify: they queue the notifications with the reply, and this file's one
 * notifier thread sends both, in order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "verconfd.h"

/*
 * A job: invalidations, then the reply that waits for them.  The notifier
 * sends both; the request's thread waits for it, but only so long
 * (REPLY_WAIT_MS): the kernel may hold a lock of the very file the reply
 * is for (fsync, truncate, a write to .control hold its inode lock) while
 * another process holds the directory lock an invalidation needs and waits
 * for that inode (rename, unlink, link of the name).  Then the request's
 * thread sends the reply itself (taken), the other process goes on, and
 * the invalidation follows.  Under queue_lock: done, taken.
 */
#define REPLY_WAIT_MS 100

struct job {
	struct invals iv;
	struct reply reply;
	bool done;   /* the notifier sent the reply */
	bool taken;  /* the request's thread sent it: the notifier frees the job */
	struct job *next;
};

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cond; /* CLOCK_MONOTONIC; notify_start sets it up */
static struct job *head, *tail;
/* Under queue_lock: the notifier is inside invals_send; no invalidation
 * is sent any more (the daemon is stopping: see notify_quiesce). */
static bool sending, quiet;

static struct inval *inval_slot(struct invals *iv)
{
	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 8;
		struct inval *it = realloc(iv->item, cap * sizeof(*it));
		if (!it)
			return NULL;
		iv->item = it;
		iv->cap = cap;
	}
	return &iv->item[iv->n];
}

static void inval_add(struct invals *iv, fuse_ino_t parent, const char *name)
{
	struct inval *it = inval_slot(iv);
	char *copy = it ? strdup(name) : NULL;
	if (copy) {
		*it = (struct inval){ parent, copy };
		iv->n++;
	}
}

/* Attributes only: needs no lock the kernel holds during a request. */
void inval_node_attrs(struct invals *iv, fuse_ino_t ino)
{
	struct inval *it = inval_slot(iv);
	if (it) {
		*it = (struct inval){ ino, NULL };
		iv->n++;
	}
}

void inval_path(struct invals *iv, const char *path)
{
	char *dir = path_dir(path);
	struct node *parent = dir ? node_find(N_DIR, dir, 0) : NULL;
	/* A directory the kernel never looked up has no cached entries. */
	if (parent)
		inval_add(iv, parent->ino, path_base(path));
	free(dir);
}

void invals_free(struct invals *iv)
{
	for (size_t i = 0; i < iv->n; i++)
		free(iv->item[i].name);
	free(iv->item);
	*iv = (struct invals){ 0 };
}

static void invals_send(struct invals *iv)
{
	for (size_t i = 0; i < iv->n; i++) {
		struct inval *it = &iv->item[i];
		/* Dropping an entry also marks its directory changed, which
		 * discards the kernel's cached listing of it (cache_readdir).
		 * -ENOENT: the kernel had no entry there (a name renamed away,
		 * then revived by .control): the listing may still be cached
		 * without it, so drop the directory's cached pages instead. */
		if (it->name &&
		    fuse_lowlevel_notify_inval_entry(fs.se, it->parent, it->name,
						     strlen(it->name)) == -ENOENT)
			fuse_lowlevel_notify_inval_inode(fs.se, it->parent, 0, 0);
		else if (!it->name)
			fuse_lowlevel_notify_inval_inode(fs.se, it->parent, -1, 0);
	}
	invals_free(iv);
}

static void reply_send(const struct reply *r)
{
	if (r->err && r->kind != REPLY_NONE) {
		fuse_reply_err(r->req, -r->err);
		return;
	}
	switch (r->kind) {
	case REPLY_ERR:
		fuse_reply_err(r->req, 0);
		break;
	case REPLY_WRITE:
		fuse_reply_write(r->req, r->written);
		break;
	case REPLY_ATTR:
		fuse_reply_attr(r->req, &r->attr, r->timeout);
		break;
	case REPLY_ENTRY:
		fuse_reply_entry(r->req, &r->entry);
		break;
	case REPLY_NONE:
		break;
	}
}

/* The store's change count when this thread took fs.lock. */
static __thread uint64_t mark_at_lock;

void fs_lock(void)
{
	pthread_mutex_lock(&fs.lock);
	mark_at_lock = vc_change_mark(fs.store);
}

/*
 * Every store change is made under fs.lock, so a count that moved while
 * this thread held it counts this request's changes.  They are made
 * durable only now, with fs.lock released: other requests go on while
 * this one waits for the disk, and requests waiting together share one
 * sync.  A failed sync is this request's error: what it changed may not
 * survive a crash.  After that the store refuses changes (store_check):
 * a failed sync is final (see vc_sync).
 */
int fs_unlock(void)
{
	uint64_t mark = vc_change_mark(fs.store);
	pthread_mutex_unlock(&fs.lock);
	if (mark == mark_at_lock)
		return 0;
	int rc = vc_sync(fs.store, mark);
	if (rc) {
		log_msg(LOG_ERR, "sync of the store failed: %s; changes refused from now on"
			" (remount)", strerror(-rc));
		pthread_mutex_lock(&fs.lock);
		snprintf(fs.last_error, sizeof(fs.last_error),
			 "sync of the store failed: %s; changes refused (EIO); remount", strerror(-rc));
		fs.sync_failed = true;
		pthread_mutex_unlock(&fs.lock);
	}
	return rc;
}

static void queue_job(struct invals *iv, const struct reply *r);

void unlock_reply(struct invals *iv, const struct reply *r)
{
	struct reply failed;
	int rc = fs_unlock();
	if (rc && !r->err) {
		failed = *r;
		failed.err = rc;
		r = &failed;
		/* The store changed these attributes, the reply says it did
		 * not: the kernel must ask again rather than keep its own. */
		if (r->kind == REPLY_ATTR && r->ino)
			inval_node_attrs(iv, r->ino);
	}
	queue_job(iv, r);
}

void unlock_reply_first(struct invals *iv, const struct reply *r)
{
	int rc = fs_unlock();
	if (rc && !r->err) {
		struct reply failed = *r;
		failed.err = rc;
		reply_send(&failed);
	} else {
		reply_send(r);
	}
	invalidate_later(iv);
}

void invalidate_later(struct invals *iv)
{
	struct reply none = { .kind = REPLY_NONE };
	queue_job(iv, &none);
}

static void queue_job(struct invals *iv, const struct reply *r)
{
	if (!iv->n) {
		invals_free(iv);
		reply_send(r);
		return;
	}
	struct job *j = malloc(sizeof(*j));
	if (!j) {
		/* Without memory the caches cannot be told: say so. */
		invals_free(iv);
		struct reply failed = *r;
		failed.err = -ENOMEM;
		reply_send(&failed);
		return;
	}
	*j = (struct job){ .iv = *iv, .reply = *r };
	*iv = (struct invals){ 0 };
	pthread_mutex_lock(&queue_lock);
	if (tail)
		tail->next = j;
	else
		head = j;
	tail = j;
	pthread_cond_signal(&queue_cond);
	if (r->kind == REPLY_NONE) {
		pthread_mutex_unlock(&queue_lock);
		return;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_nsec += REPLY_WAIT_MS * 1000000L;
	deadline.tv_sec += deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	while (!j->done && pthread_cond_timedwait(&done_cond, &queue_lock, &deadline) == 0)
		;
	bool done = j->done;
	struct reply late = j->reply;
	/* Not done: the notifier now frees it, the reply goes out here. */
	if (!done)
		j->taken = true;
	pthread_mutex_unlock(&queue_lock);
	if (done) {
		free(j);
		return;
	}
	log_msg(LOG_WARNING, "invalidation waited over %d ms for a directory lock: replying first",
		REPLY_WAIT_MS);
	reply_send(&late);
}

static void *notifier(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&queue_lock);
		while (!head)
			pthread_cond_wait(&queue_cond, &queue_lock);
		struct job *j = head;
		head = j->next;
		if (!head)
			tail = NULL;
		bool send = !quiet;
		sending = send;
		pthread_mutex_unlock(&queue_lock);
		if (send)
			invals_send(&j->iv);
		else
			invals_free(&j->iv);
		pthread_mutex_lock(&queue_lock);
		sending = false;
		pthread_cond_broadcast(&done_cond);
		if (j->reply.kind == REPLY_NONE || j->taken) {
			pthread_mutex_unlock(&queue_lock);
			free(j);
			continue;
		}
		/* Sent under the lock, so the waiting thread cannot take it
		 * meanwhile; that thread frees the job. */
		reply_send(&j->reply);
		j->done = true;
		pthread_cond_broadcast(&done_cond);
		pthread_mutex_unlock(&queue_lock);
	}
	return NULL;
}

/*
 * Before the session loop stops: an invalidation the notifier is sending
 * may wait in the kernel for a directory lock that a create or rename in
 * that directory holds until its reply.  Once the loop stops nobody
 * answers, and the notifier, inside a write to /dev/fuse, keeps the
 * connection from closing: the daemon could never exit.  So the daemon
 * stops sending invalidations (they no longer matter) and waits, with
 * the loop still answering requests, until the one in flight is done, at
 * most max_ms.  False if it is still stuck then.
 */
bool notify_quiesce(int max_ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += max_ms / 1000;
	deadline.tv_nsec += (max_ms % 1000) * 1000000L;
	deadline.tv_sec += deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&queue_lock);
	quiet = true;
	while (sending && pthread_cond_timedwait(&done_cond, &queue_lock, &deadline) == 0)
		;
	bool idle = !sending;
	pthread_mutex_unlock(&queue_lock);
	return idle;
}

int notify_start(void)
{
	pthread_t t;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&done_cond, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&t, NULL, notifier, NULL);
	if (rc)
		return -rc;
	pthread_detach(t);
	return 0;
}
