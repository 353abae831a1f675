/*
 * verconf: output: times, modes, user names, aligned tables and JSON.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "verconf.h"

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static time_t seconds_of(int64_t ns)
{
	/* Floor, so that times before 1970 format as the second they fall in. */
	return (time_t)(ns >= 0 ? ns / 1000000000 : (ns - 999999999) / 1000000000);
}

void format_local_time(int64_t ns, char *buf, size_t len)
{
	time_t t = seconds_of(ns);
	struct tm tm;
	char zone[8];
	localtime_r(&t, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	/* strftime's %z is "+0100"; ISO 8601's extended form wants "+01:00". */
	strftime(zone, sizeof zone, "%z", &tm);
	snprintf(buf + n, len - n, "%.3s:%.2s", zone, zone + 3);
}

void format_utc_time(int64_t ns, char *buf, size_t len)
{
	time_t t = seconds_of(ns);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void format_sha256(const uint8_t sha[32], size_t hexdigits, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	if (hexdigits > 64)
		hexdigits = 64;
	for (size_t i = 0; i < hexdigits; i++)
		buf[i] = hex[(sha[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
	buf[hexdigits] = '\0';
}

void format_mode(enum vc_kind kind, uint32_t mode, char buf[11])
{
	static const char rwx[] = "rwxrwxrwx";
	buf[0] = kind == VC_DIR ? 'd' : kind == VC_SYMLINK ? 'l' : '-';
	for (int i = 0; i < 9; i++)
		buf[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
	if (mode & 04000)
		buf[3] = buf[3] == 'x' ? 's' : 'S';
	if (mode & 02000)
		buf[6] = buf[6] == 'x' ? 's' : 'S';
	if (mode & 01000)
		buf[9] = buf[9] == 'x' ? 't' : 'T';
	buf[10] = '\0';
}

/* A small cache: a listing names the same few users many times. */
struct name_cache {
	uint32_t id;
	char *name;
	struct name_cache *next;
};

static const char *cached_name(struct name_cache **cache, uint32_t id, bool group)
{
	for (struct name_cache *n = *cache; n; n = n->next)
		if (n->id == id)
			return n->name;
	struct name_cache *n = malloc(sizeof *n);
	char *name = NULL;
	if (group) {
		struct group *gr = getgrgid(id);
		name = gr ? strdup(gr->gr_name) : NULL;
	} else {
		struct passwd *pw = getpwuid(id);
		name = pw ? strdup(pw->pw_name) : NULL;
	}
	if (!name && asprintf(&name, "%" PRIu32, id) < 0)
		abort();
	if (!n || !name)
		abort();
	*n = (struct name_cache){ id, name, *cache };
	*cache = n;
	return name;
}

const char *user_name(uint32_t uid)
{
	static struct name_cache *users;
	return cached_name(&users, uid, false);
}

const char *group_name(uint32_t gid)
{
	static struct name_cache *groups;
	return cached_name(&groups, gid, true);
}

void format_user(uint32_t uid, char *buf, size_t len)
{
	snprintf(buf, len, "%s(%" PRIu32 ")", user_name(uid), uid);
}

const char *display_path(const char *path)
{
	return *path ? path : "/";
}

/* ---- tables ---------------------------------------------------------- */

void table_init(struct table *t, const char *const *headers, size_t ncols, unsigned right)
{
	*t = (struct table){ .ncols = ncols, .headers = headers, .right_aligned = right };
}

/* Control characters (a newline in a path, say) would break the table:
 * they are shown escaped, as \n or \xHH. */
static char *escape_cell(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		n += (unsigned char)*p < 0x20 || *p == 0x7f ? 4 : 1;
	char *out = malloc(n + 1), *o = out;
	if (!out)
		abort();
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '\n')
			o += sprintf(o, "\\n");
		else if (ch == '\t')
			o += sprintf(o, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			o += sprintf(o, "\\x%02x", ch);
		else
			*o++ = (char)ch;
	}
	*o = '\0';
	return out;
}

void table_add(struct table *t, const char *color, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cells = realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
		t->colors = realloc(t->colors, t->cap * sizeof *t->colors);
		if (!t->cells || !t->colors)
			abort();
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = escape_cell(cells[i] ? cells[i] : "");
	t->colors[t->nrows++] = color;
}

/* Width on a terminal, counted in code points: right for the scripts
 * config paths are written in, not for wide (CJK) characters. */
static size_t display_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void print_cell(const char *s, size_t width, bool right, bool last)
{
	size_t pad = width - display_width(s);
	if (right)
		printf("%*s%s", (int)pad, "", s);
	else if (last)
		fputs(s, stdout);
	else
		printf("%s%*s", s, (int)pad, "");
}

/* Trailing empty cells print nothing, so that no line ends in blanks. */
static void print_row(const struct table *t, const char *const *cells, const size_t *widths,
		      const char *color)
{
	size_t n = t->ncols;
	while (n > 1 && !*cells[n - 1])
		n--;
	if (color)
		fputs(color, stdout);
	for (size_t i = 0; i < n; i++) {
		bool last = i + 1 == n;
		print_cell(cells[i], widths[i], t->right_aligned & (1u << i), last);
		if (!last)
			fputs("  ", stdout);
	}
	if (color)
		fputs(COLOR_RESET, stdout);
	putchar('\n');
}

void table_print(const struct table *t, bool color)
{
	size_t *widths = calloc(t->ncols, sizeof *widths);
	if (!widths)
		abort();
	for (size_t i = 0; i < t->ncols; i++)
		widths[i] = display_width(t->headers[i]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t w = display_width(t->cells[r * t->ncols + i]);
			if (w > widths[i])
				widths[i] = w;
		}
	print_row(t, t->headers, widths, color ? COLOR_BOLD : NULL);
	for (size_t r = 0; r < t->nrows; r++)
		print_row(t, (const char *const *)&t->cells[r * t->ncols], widths,
			  color ? t->colors[r] : NULL);
	free(widths);
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->colors);
}

/* ---- JSON ------------------------------------------------------------ */

/* cJSON keeps numbers as doubles, exact only up to 2^53: nanosecond times
 * are written as raw integer text instead. */
void json_add_int(cJSON *o, const char *key, int64_t v)
{
	char text[24];
	snprintf(text, sizeof text, "%" PRId64, v);
	cJSON_AddRawToObject(o, key, text);
}

/*
 * The length of the UTF-8 sequence at s (of len bytes), or 0 if none
 * starts there: RFC 3629's rules, so no overlong forms, no surrogates,
 * nothing past U+10FFFF — what strict JSON parsers accept.
 */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
		 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (n == 0 || n > len)
		return 0;
	for (size_t k = 1; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	/* The second byte's range for the first bytes that allow less. */
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return n;
}

bool utf8_text(const void *buf, size_t len)
{
	const unsigned char *s = buf;
	for (size_t i = 0, n; i < len; i += n)
		if (s[i] == 0 || !(n = utf8_sequence(s + i, len - i)))
			return false;
	return true;
}

char *base64_encode(const void *buf, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = buf;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
	if (!out)
		abort();
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0) |
			     (i + 2 < len ? s[i + 2] : 0);
		*o++ = alphabet[v >> 18 & 63];
		*o++ = alphabet[v >> 12 & 63];
		*o++ = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? alphabet[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* s with every byte that starts no UTF-8 sequence replaced by U+FFFD. */
static char *utf8_replaced(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(3 * len + 1), *o = out;
	if (!out)
		abort();
	for (size_t i = 0, n; i < len; i += n) {
		n = utf8_sequence((const unsigned char *)s + i, len - i);
		if (n) {
			memcpy(o, s + i, n);
			o += n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			n = 1;
		}
	}
	*o = '\0';
	return out;
}

cJSON *json_text(const char *s)
{
	if (utf8_text(s, strlen(s)))
		return cJSON_CreateString(s);
	char *shown = utf8_replaced(s);
	cJSON *item = cJSON_CreateString(shown);
	free(shown);
	return item;
}

void json_set_text(cJSON *o, const char *key, const char *s)
{
	char bkey[64];
	snprintf(bkey, sizeof bkey, "%s_base64", key);
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_DeleteItemFromObjectCaseSensitive(o, bkey);
	if (utf8_text(s, strlen(s))) {
		cJSON_AddStringToObject(o, key, s);
		return;
	}
	char *shown = utf8_replaced(s), *exact = base64_encode(s, strlen(s));
	cJSON_AddStringToObject(o, key, shown);
	cJSON_AddStringToObject(o, bkey, exact);
	free(shown);
	free(exact);
}

void json_add_version_ref(cJSON *o, const char *key, vc_id id)
{
	if (id)
		json_add_int(o, key, id);
	else
		cJSON_AddNullToObject(o, key);
}

void json_add_time(cJSON *o, const char *key, int64_t ns)
{
	char text[40], nskey[64];
	format_utc_time(ns, text, sizeof text);
	cJSON_AddStringToObject(o, key, text);
	snprintf(nskey, sizeof nskey, "%s_ns", key);
	json_add_int(o, nskey, ns);
}

cJSON *json_actor(const vc_actor *a)
{
	cJSON *o = cJSON_CreateObject();
	json_add_int(o, "uid", a->uid);
	cJSON_AddStringToObject(o, "user", user_name(a->uid));
	json_add_int(o, "gid", a->gid);
	json_add_int(o, "pid", a->pid);
	json_set_text(o, "comm", a->comm);
	return o;
}

static void json_add_mode(cJSON *o, uint32_t mode)
{
	char text[8];
	snprintf(text, sizeof text, "%04o", mode & 07777);
	cJSON_AddStringToObject(o, "mode", text);
}

cJSON *json_version(const vc_version *v, int live)
{
	char sha[65];
	cJSON *o = cJSON_CreateObject();
	json_add_int(o, "id", v->id);
	json_set_text(o, "path", v->path);
	cJSON_AddStringToObject(o, "kind", vc_kind_name(v->kind));
	cJSON_AddStringToObject(o, "op", vc_op_name(v->op));
	cJSON_AddStringToObject(o, "status", v->status == VC_REJECTED ? "rejected" : "accepted");
	if (v->status == VC_REJECTED)
		json_set_text(o, "reason", v->reason);
	if (live >= 0)
		cJSON_AddBoolToObject(o, "live", live);
	json_add_int(o, "size", v->size);
	json_add_mode(o, v->mode);
	json_add_int(o, "uid", v->uid);
	cJSON_AddStringToObject(o, "owner", user_name(v->uid));
	json_add_int(o, "gid", v->gid);
	cJSON_AddStringToObject(o, "group", group_name(v->gid));
	json_add_version_ref(o, "source", v->source);
	json_add_time(o, "time", v->created_ns);
	format_sha256(v->sha256, 64, sha);
	cJSON_AddStringToObject(o, "sha256", sha);
	cJSON_AddItemToObject(o, "actor", json_actor(&v->actor));
	return o;
}

/*
 * Whatever reached the document unchecked (values and keys of a config
 * parsed for diff --keys, user and group names from NSS): a stray byte
 * becomes U+FFFD, so the output is always UTF-8.  Names that must keep
 * their bytes went through json_set_text already.
 */
static void json_make_utf8(cJSON *item)
{
	for (; item; item = item->next) {
		if (item->string && !utf8_text(item->string, strlen(item->string))) {
			char *fixed = utf8_replaced(item->string);
			if (!(item->type & cJSON_StringIsConst))
				cJSON_free(item->string);
			item->string = fixed;
			item->type &= ~cJSON_StringIsConst;
		}
		if (cJSON_IsString(item) && item->valuestring &&
		    !utf8_text(item->valuestring, strlen(item->valuestring))) {
			char *fixed = utf8_replaced(item->valuestring);
			cJSON_free(item->valuestring);
			item->valuestring = fixed;
		}
		json_make_utf8(item->child);
	}
}

int json_print(cJSON *doc)
{
	json_make_utf8(doc);
	char *text = cJSON_Print(doc);
	cJSON_Delete(doc);
	if (!text)
		return fail(EXIT_STORE, "out of memory building JSON");
	puts(text);
	free(text);
	return EXIT_OK;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
