/*
 * The inode table: one node for each inode the kernel knows (has looked up
 * and not yet forgotten).  Two search trees (tsearch, from libc): by inode
 * number, and by key.  The key of a file node is its version id; of a
 * directory, pending file or .versions directory, its path.  Caller holds
 * fs.lock.
 */
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "verconfd.h"

static void *by_ino;
static void *by_key;
static fuse_ino_t next_ino = FUSE_ROOT_ID + 1;

static int cmp_ino(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static bool keyed_by_path(enum node_kind k)
{
	return k == N_DIR || k == N_DRAFT || k == N_VDIR;
}

static int cmp_key(const void *a, const void *b)
{
	const struct node *x = a, *y = b;
	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	if (keyed_by_path(x->kind))
		return strcmp(x->path, y->path);
	return x->version < y->version ? -1 : x->version > y->version;
}

static void node_index(struct node *n)
{
	tsearch(n, &by_ino, cmp_ino);
	tsearch(n, &by_key, cmp_key);
	n->keyed = true;
}

void nodes_init(void)
{
	struct node *root = node_get(N_DIR, "", 0);
	/* The root is never forgotten by the kernel's count alone. */
	root->nlookup = 1ULL << 62;
}

struct node *node_by_ino(fuse_ino_t ino)
{
	struct node key = { .ino = ino };
	void *hit = tfind(&key, &by_ino, cmp_ino);
	return hit ? *(struct node **)hit : NULL;
}

struct node *node_find(enum node_kind kind, const char *path, vc_id version)
{
	struct node key = { .kind = kind, .path = (char *)path, .version = version };
	void *hit = tfind(&key, &by_key, cmp_key);
	return hit ? *(struct node **)hit : NULL;
}

struct node *node_get(enum node_kind kind, const char *path, vc_id version)
{
	struct node *n = node_find(kind, path, version);
	if (n) {
		n->nlookup++;
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->path = path ? strdup(path) : NULL;
	n->version = version;
	n->nlookup = 1;
	/* The root must be inode 1; every other number is handed out once
	 * per mount, so a number is never reused while the kernel may still
	 * hold it (versions, not inode numbers, are the stable identity). */
	n->ino = (kind == N_DIR && path && !*path) ? FUSE_ROOT_ID : next_ino++;
	node_index(n);
	return n;
}

void node_forget(struct node *n, uint64_t nlookup)
{
	n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
	if (n->nlookup)
		return;
	if (n->keyed)
		tdelete(n, &by_key, cmp_key);
	tdelete(n, &by_ino, cmp_ino);
	free(n->path);
	free(n->last_path);
	free(n);
}

void node_rekey(struct node *n, enum node_kind kind, const char *path, vc_id version)
{
	if (n->keyed)
		tdelete(n, &by_key, cmp_key);
	char *copy = path ? strdup(path) : NULL;
	free(n->path);
	n->path = copy;
	n->kind = kind;
	n->version = version;
	/* Two nodes must never share a key; if one already holds it (the
	 * kernel looked the new key up separately), this node stays reachable
	 * by inode number only. */
	n->keyed = !node_find(kind, path, version);
	if (n->keyed)
		tsearch(n, &by_key, cmp_key);
}

void node_detach(struct node *n)
{
	if (n->keyed)
		tdelete(n, &by_key, cmp_key);
	n->keyed = false;
	if (n->path) {
		free(n->last_path);
		n->last_path = n->path;
	}
	n->path = NULL;
	n->attr.st_nlink = 0;
}

struct walk_ctx {
	const char *prefix;
	size_t len;
	struct node **hits;
	size_t nhits, cap;
};

static bool path_is_under(const char *path, const char *prefix, size_t len)
{
	if (!path)
		return false;
	if (len == 0)
		return true;
	return strncmp(path, prefix, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static void collect(const void *nodep, VISIT which, void *closure)
{
	struct walk_ctx *w = closure;
	struct node *n = *(struct node *const *)nodep;
	if (which != postorder && which != leaf)
		return;
	if (n->kind == N_VDIR || n->kind == N_VFILE || !path_is_under(n->path, w->prefix, w->len))
		return;
	if (w->nhits == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		struct node **h = realloc(w->hits, cap * sizeof(*h));
		if (!h)
			return;
		w->hits = h;
		w->cap = cap;
	}
	w->hits[w->nhits++] = n;
}

void nodes_under(const char *p, void (*fn)(struct node *n, void *ctx), void *ctx)
{
	struct walk_ctx w = { .prefix = p, .len = strlen(p) };
	/* Collect first, then call: fn may re-key nodes, which changes the tree
	 * being walked. */
	twalk_r(by_ino, collect, &w);
	for (size_t i = 0; i < w.nhits; i++)
		fn(w.hits[i], ctx);
	free(w.hits);
}
