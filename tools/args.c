/*
 * verconf: command-line values: ids, counts, times, users and paths.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verconf.h"

#define NS_PER_SEC INT64_C(1000000000)

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

bool parse_id(const char *s, vc_id *out)
{
	if (!all_digits(s))
		return false;
	errno = 0;
	long long v = strtoll(s, NULL, 10);
	if (errno || v <= 0)
		return false;
	*out = v;
	return true;
}

bool parse_count(const char *s, int *out)
{
	if (!all_digits(s))
		return false;
	errno = 0;
	long v = strtol(s, NULL, 10);
	if (errno || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* "30s", "15m", "2h", "3d", "1w" before now, or "now". */
static bool parse_relative_time(const char *s, int64_t *ns)
{
	if (strcmp(s, "now") == 0) {
		*ns = now_ns();
		return true;
	}
	static const struct { char suffix; int64_t seconds; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
	};
	char *end;
	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	long long n = strtoll(s, &end, 10);
	if (errno || end[0] == '\0' || end[1] != '\0')
		return false;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (units[i].suffix != end[0])
			continue;
		if (n > INT64_MAX / NS_PER_SEC / units[i].seconds)
			return false;
		*ns = now_ns() - n * units[i].seconds * NS_PER_SEC;
		return true;
	}
	return false;
}

/* ".123" after the seconds: up to nine digits of a second. */
static const char *parse_fraction(const char *p, int64_t *frac_ns)
{
	*frac_ns = 0;
	if (*p != '.' && *p != ',')
		return p;
	p++;
	int64_t scale = NS_PER_SEC / 10;
	if (!isdigit((unsigned char)*p))
		return NULL;
	for (; isdigit((unsigned char)*p); p++) {
		*frac_ns += (*p - '0') * scale;
		scale /= 10;
	}
	return p;
}

/* "Z", "+01:00", "-0530", or nothing (local time).  Sets *utc_offset in
 * seconds east of UTC, or *local. */
static bool parse_zone(const char *p, bool *local, long *utc_offset)
{
	*local = false;
	*utc_offset = 0;
	if (*p == '\0') {
		*local = true;
		return true;
	}
	if (strcmp(p, "Z") == 0 || strcmp(p, "z") == 0)
		return true;
	if (*p != '+' && *p != '-')
		return false;
	int sign = *p == '-' ? -1 : 1;
	unsigned hh, mm;
	int used = 0;
	if (sscanf(p + 1, "%2u:%2u%n", &hh, &mm, &used) != 2 &&
	    sscanf(p + 1, "%2u%2u%n", &hh, &mm, &used) != 2)
		return false;
	if (p[1 + used] != '\0' || hh > 23 || mm > 59)
		return false;
	*utc_offset = sign * (long)(hh * 3600 + mm * 60);
	return true;
}

/* "2026-12-03", "2026-12-03T20:00", "2026-12-03 20:00:00.5", each with an
 * optional zone; without one the time is local. */
static bool parse_iso_time(const char *s, int64_t *ns)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	int64_t frac = 0;
	if (!p)
		return false;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (!(p = strptime(p + 1, "%H:%M", &tm)))
			return false;
		if (*p == ':' && !(p = strptime(p + 1, "%S", &tm)))
			return false;
		if (!(p = parse_fraction(p, &frac)))
			return false;
	}
	bool local;
	long offset;
	if (!parse_zone(p, &local, &offset))
		return false;
	time_t t;
	if (local) {
		tm.tm_isdst = -1;
		t = mktime(&tm);
	} else {
		t = timegm(&tm) - offset;
	}
	if (t == (time_t)-1)
		return false;
	*ns = (int64_t)t * NS_PER_SEC + frac;
	return true;
}

bool parse_time(const char *s, int64_t *ns)
{
	return parse_relative_time(s, ns) || parse_iso_time(s, ns);
}

int parse_at(struct ctx *c, const char *s, vc_id *seq)
{
	vc_id last;
	int rc = vc_last_seq(c->store, &last);
	if (rc < 0)
		return store_fail(c, rc, "reading the journal");
	const char *digits = s[0] == '@' ? s + 1 : s;
	if (all_digits(digits)) {
		errno = 0;
		long long n = strtoll(digits, NULL, 10);
		if (errno)
			return fail(EXIT_USAGE, "bad sequence number '%s'", s);
		if (n > last)
			return fail(EXIT_NOTFOUND, "no sequence number %lld (the journal ends at %lld)",
				    n, (long long)last);
		*seq = n;
		return EXIT_OK;
	}
	if (s[0] == '@')
		return fail(EXIT_USAGE, "bad sequence number '%s'", s);
	int64_t ns;
	if (!parse_time(s, &ns))
		return fail(EXIT_USAGE, "bad time '%s' (use ISO 8601 like 2026-12-03T20:00:00Z, "
					"or 30s, 15m, 2h, 3d, 1w before now; @N is a sequence number)", s);
	rc = vc_seq_at_time(c->store, ns, seq);
	if (rc < 0)
		return store_fail(c, rc, "reading the journal");
	return EXIT_OK;
}

int at_option(void *state, int opt, const char *arg)
{
	struct at_option *a = state;
	if (opt != OPT_AT)
		return -1;
	a->at = arg;
	return EXIT_OK;
}

bool parse_user(const char *s, int64_t *uid)
{
	if (all_digits(s)) {
		errno = 0;
		long long v = strtoll(s, NULL, 10);
		if (errno || v > UINT32_MAX)
			return false;
		*uid = v;
		return true;
	}
	struct passwd *pw = getpwnam(s);
	if (!pw)
		return false;
	*uid = pw->pw_uid;
	return true;
}

/* arg under dir ("dir" itself or "dir/..."): the rest after the slash(es). */
static const char *under_dir(const char *arg, const char *dir)
{
	if (!dir)
		return NULL;
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (strncmp(arg, dir, n) != 0 || (arg[n] != '/' && arg[n] != '\0'))
		return NULL;
	return arg + n;
}

int store_path_arg(struct ctx *c, const char *arg, char *out)
{
	const char *rest = arg;
	if (arg[0] == '/') {
		/* The mount as given and as resolved: either may be how the
		 * user spells it.  Without -C, the mount of this store (if any)
		 * is looked up on demand. */
		if (!c->mount_dir)
			find_mount(c, true);
		const char *r = under_dir(arg, c->mount_arg);
		if (!r)
			r = under_dir(arg, c->mount_dir);
		rest = r ? r : arg;
	}
	while (rest[0] == '/' || (rest[0] == '.' && rest[1] == '/'))
		rest += rest[0] == '/' ? 1 : 2;
	size_t len = strlen(rest);
	while (len > 0 && rest[len - 1] == '/')
		len--;
	if (len > VC_PATH_MAX)
		return fail(EXIT_USAGE, "path too long: %s", arg);
	memcpy(out, rest, len);
	out[len] = '\0';
	int rc = vc_path_check(out);
	if (rc < 0)
		return fail(EXIT_USAGE, "bad path '%s': %s", arg,
			    rc == -ENAMETOOLONG ? "too long" : "empty, '.' or '..' component");
	return EXIT_OK;
}

static int ignore_version(const vc_version *v, void *ctx)
{
	(void)v;
	(void)ctx;
	return 0;
}

/* Why a path has no live version: deleted, or never existed. */
static int path_not_live(struct ctx *c, const char *path)
{
	int rc = vc_list_versions(c->store, path, 1, ignore_version, NULL);
	if (rc == -ENOENT)
		return fail(EXIT_NOTFOUND, "no such path in the store: %s", display_path(path));
	return fail(EXIT_NOTFOUND, "%s is deleted (see: verconf log '%s')", display_path(path),
		    display_path(path));
}

int resolve_version(struct ctx *c, const char *arg, vc_version *out)
{
	vc_id id;
	int rc;
	if (parse_id(arg, &id)) {
		rc = vc_get_version(c->store, id, out);
		if (rc == -ENOENT)
			return fail(EXIT_NOTFOUND, "no version %lld", (long long)id);
		return rc < 0 ? store_fail(c, rc, "reading version %lld", (long long)id) : EXIT_OK;
	}
	char path[VC_PATH_MAX + 1];
	if ((rc = store_path_arg(c, arg, path)) != EXIT_OK)
		return rc;
	vc_entry e;
	rc = vc_lookup(c->store, path, &e);
	if (rc == -ENOENT)
		return path_not_live(c, path);
	if (rc < 0)
		return store_fail(c, rc, "looking up %s", display_path(path));
	*out = e.head;
	return EXIT_OK;
}

struct find_in_tree {
	const char *path;
	vc_id id;
};

static int match_tree_entry(const char *name, const vc_entry *e, void *ctx)
{
	struct find_in_tree *f = ctx;
	if (strcmp(name, f->path) != 0)
		return 0;
	f->id = e->head.id;
	return 1;
}

int version_at_seq(struct ctx *c, const char *path, vc_id seq, vc_id *id)
{
	struct find_in_tree f = { path, 0 };
	int rc = vc_tree_at(c->store, seq, match_tree_entry, &f);
	if (rc < 0)
		return store_fail(c, rc, "reading the tree at sequence %lld", (long long)seq);
	*id = f.id;
	return EXIT_OK;
}
