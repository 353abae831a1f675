/*
 * verconf, the query tool: declarations shared by its source files.
 *
 * Layering: the tool reads the store only through store.h, opened
 * read-only (a WAL reader, safe while verconfd serves), and changes state
 * only by writing commands to a mount's .control file, so that the daemon
 * stays the one writer.  The one exception is `import`, which opens a store
 * that no daemon serves as its writer.
 */
#ifndef VERCONF_TOOL_H
#define VERCONF_TOOL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "store.h"

/* Exit codes, as documented in verconf(1). */
enum {
	EXIT_OK = 0,
	EXIT_NOTFOUND = 1,
	EXIT_DIFFERS = 1, /* also: fsck found problems */
	EXIT_USAGE = 2,
	EXIT_STORE = 3, /* store or mount error */
};

enum color_mode { COLOR_AUTO, COLOR_ALWAYS, COLOR_NEVER };

/* The options every command takes, and what they resolve to. */
struct ctx {
	const char *store_arg; /* --store FILE */
	const char *mount_arg; /* -C MOUNTDIR */
	enum color_mode color_mode;
	bool json;
	bool color;        /* resolved from color_mode */
	char *store_file;  /* the store in use (malloc'd) */
	char *mount_dir;   /* canonical mount directory, NULL until known */
	vc_store *store;
};

struct command {
	const char *name;
	int (*run)(struct ctx *c, int argc, char **argv);
	const char *synopsis; /* arguments after the command name */
	const char *summary;  /* one line for `verconf --help` */
	const char *options;  /* the command's own options, for --help */
};

extern const struct command commands[];
const struct command *find_command(const char *name);

/* ---- options (verconf.c) ---------------------------------------------- */

/* getopt_long values of the options every command shares. */
enum {
	OPT_STORE = 0x100,
	OPT_COLOR,
	OPT_JSON,
	OPT_HELP,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_USER,
	OPT_ALL,
	OPT_AT,
	OPT_TO,
	OPT_KEYS,
};

#define COMMON_OPTIONS                                                  \
	{ "store", required_argument, NULL, OPT_STORE },                \
	{ "color", optional_argument, NULL, OPT_COLOR },                \
	{ "colour", optional_argument, NULL, OPT_COLOR },               \
	{ "help", no_argument, NULL, OPT_HELP }
#define JSON_OPTION { "json", no_argument, NULL, OPT_JSON }
#define OPTIONS_END { NULL, 0, NULL, 0 }
/* Short options every command shares (prefix of each optstring). */
#define COMMON_SHORT "C:h"

/*
 * Handle one of the shared options.  Returns 1 if handled, 0 if opt is not
 * a shared option, or exits (for --help, and with EXIT_USAGE for a bad
 * value or an unknown option).
 */
int common_option(struct ctx *c, const struct command *cmd, int opt, const char *arg);
/*
 * Parse a command's options: the shared ones, and the command's own through
 * own (which returns EXIT_OK, an exit code, or -1 for an option it does not
 * know).  *first is the index of the first operand.  Returns EXIT_OK or an
 * exit code.
 */
struct option;
typedef int (*option_fn)(void *state, int opt, const char *arg);
int parse_options(struct ctx *c, const struct command *cmd, int argc, char **argv,
		  const char *shortopts, const struct option *longopts, option_fn own, void *state,
		  int *first);
/* Print "verconf CMD: message" and a hint to stderr; returns EXIT_USAGE. */
int usage_error(const struct command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- errors and the store (verconf.c) -------------------------------- */

/* Print "verconf: message" to stderr and return code. */
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A store call failed with rc: -ENOENT is EXIT_NOTFOUND, anything else
 * EXIT_STORE.  Prints what failed and the store's message. */
int store_fail(struct ctx *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Find the store (--store, -C, VERCONF_STORE) and open it read-only.
 * Returns EXIT_OK or an exit code after printing why. */
int open_store(struct ctx *c);
/* Find the store file without opening it (used by import). */
int resolve_store_file(struct ctx *c);
void close_ctx(struct ctx *c);

/* ---- command-line values (args.c) ------------------------------------ */

/* A version id: decimal digits, > 0. */
bool parse_id(const char *s, vc_id *out);
/* A non-negative count. */
bool parse_count(const char *s, int *out);
/* Relative ("30s", "15m", "2h", "3d", "1w", "now") or ISO 8601 time. */
bool parse_time(const char *s, int64_t *ns);
/* --at SEQ|TIME: "@N" or "N" is a sequence number, anything else a time
 * resolved through the store.  Returns EXIT_OK or an exit code. */
int parse_at(struct ctx *c, const char *s, vc_id *seq);
/* --at SEQ|TIME, for the commands that take it. */
struct at_option {
	const char *at;
};
int at_option(void *state, int opt, const char *arg); /* an option_fn */
/* A user name or uid for --user. */
bool parse_user(const char *s, int64_t *uid);
/*
 * A path argument into a store path (out has VC_PATH_MAX + 1 bytes).
 * Store-relative paths are taken as they are ("./" and trailing slashes
 * dropped); an absolute path under the mount directory has the mount
 * prefix stripped; any other absolute path is taken from the store root.
 * Returns EXIT_OK or EXIT_USAGE after printing why.
 */
int store_path_arg(struct ctx *c, const char *arg, char *out);
/* The version an argument names: a version id, or a path's live version. */
int resolve_version(struct ctx *c, const char *arg, vc_version *out);
/* The version id path showed right after journal entry seq (0: none). */
int version_at_seq(struct ctx *c, const char *path, vc_id seq, vc_id *id);

/* ---- listings (views.c) --------------------------------------------- */

/* Entries copied out of a listing callback, so that no store call runs
 * inside another's callback. */
struct entry_list {
	struct listed_entry {
		char *name;
		vc_entry e;
	} *items;
	size_t n, cap;
};
int collect_entry(const char *name, const vc_entry *e, void *ctx); /* a vc_entry_cb */
void free_entries(struct entry_list *l);
/* The time of journal entry seq, 0 if there is none. */
int64_t seq_time(struct ctx *c, vc_id seq);

/* ---- output (output.c) ----------------------------------------------- */

int64_t now_ns(void);
/* "2026-12-03T21:12:05+01:00" (tables) and "2026-12-03T20:12:05Z" (JSON). */
void format_local_time(int64_t ns, char *buf, size_t len);
void format_utc_time(int64_t ns, char *buf, size_t len);
void format_sha256(const uint8_t sha[32], size_t hexdigits, char *buf);
/* "-rw-r--r--" style, with the kind's letter. */
void format_mode(enum vc_kind kind, uint32_t mode, char buf[11]);
const char *user_name(uint32_t uid);  /* name, or the number as text */
const char *group_name(uint32_t gid);
/* "alice(1000)" */
void format_user(uint32_t uid, char *buf, size_t len);
/* Store paths for humans: the root is "/". */
const char *display_path(const char *path);

/* Aligned table: rows of text cells, the last column not padded. */
struct table {
	size_t ncols;
	const char *const *headers;
	unsigned right_aligned; /* bit i: column i is right-aligned */
	size_t nrows, cap;
	char **cells;        /* nrows * ncols, each malloc'd */
	const char **colors; /* per row: escape sequence or NULL */
};
void table_init(struct table *t, const char *const *headers, size_t ncols, unsigned right);
/* Append a row of ncols cells (copied; control characters escaped). */
void table_add(struct table *t, const char *color, const char *const *cells);
void table_print(const struct table *t, bool color);
void table_free(struct table *t);

#define COLOR_BOLD "\033[1m"
#define COLOR_RED "\033[31m"
#define COLOR_GREEN "\033[32m"
#define COLOR_YELLOW "\033[33m"
#define COLOR_RESET "\033[0m"

/* buf is UTF-8 (strict: RFC 3629) with no NUL byte. */
bool utf8_text(const void *buf, size_t len);
/* malloc'd base64 (RFC 4648, padded) of buf. */
char *base64_encode(const void *buf, size_t len);

/* JSON building blocks; field names are documented in verconf(1). */
/* Set key to text s.  JSON strings are Unicode, names are bytes: when s is
 * not UTF-8, key shows it with U+FFFD for each stray byte and key_base64
 * holds its exact bytes. */
void json_set_text(cJSON *o, const char *key, const char *s);
/* A message as a JSON string, stray bytes shown as U+FFFD. */
cJSON *json_text(const char *s);
void json_add_int(cJSON *o, const char *key, int64_t v);
/* A version id, or null for 0 (none). */
void json_add_version_ref(cJSON *o, const char *key, vc_id id);
/* key: UTC text, key_ns: the exact nanoseconds. */
void json_add_time(cJSON *o, const char *key, int64_t ns);
cJSON *json_actor(const vc_actor *a);
/* A version; live < 0 leaves the "live" field out. */
cJSON *json_version(const vc_version *v, int live);
/* Print the document to stdout, free it; EXIT_OK or EXIT_STORE. */
int json_print(cJSON *doc);

/* Write all of buf to fd; 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

/* ---- commands -------------------------------------------------------- */

int cmd_log(struct ctx *c, int argc, char **argv);
int cmd_show(struct ctx *c, int argc, char **argv);
int cmd_diff(struct ctx *c, int argc, char **argv);
int cmd_status(struct ctx *c, int argc, char **argv);
int cmd_journal(struct ctx *c, int argc, char **argv);
int cmd_tree(struct ctx *c, int argc, char **argv);
int cmd_activate(struct ctx *c, int argc, char **argv);
int cmd_rollback(struct ctx *c, int argc, char **argv);
int cmd_restore(struct ctx *c, int argc, char **argv);
int cmd_fsck(struct ctx *c, int argc, char **argv);
int cmd_export(struct ctx *c, int argc, char **argv);
int cmd_import(struct ctx *c, int argc, char **argv);

/* ---- mounts (control.c) ---------------------------------------------- */

/* Read MOUNT/.control's status into a malloc'd NUL-terminated text. */
int read_control_status(const char *mount, char **text);
/* The value of the "key: value" line, malloc'd, or NULL. */
char *status_value(const char *text, const char *key);
/* Find the mount serving c's store: -C, else /proc/self/mountinfo.  Sets
 * c->mount_dir.  Returns EXIT_OK or (after a message unless quiet)
 * EXIT_STORE. */
int find_mount(struct ctx *c, bool quiet);

#endif
