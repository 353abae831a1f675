/*
 * verconf: query the verconf store, and steer a verconfd mount.
 *
 * This file holds main(), the command table, the options every command
 * shares, and how the store is found and opened.  See verconf(1).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "verconf.h"

#define FILTER_OPTIONS                                                      \
	"      --since TIME    only entries at or after TIME\n"                 \
	"      --until TIME    only entries at or before TIME\n"                \
	"      --user USER     only entries made by USER (name or uid)\n"       \
	"  -n, --max-count N   at most N entries\n"

const struct command commands[] = {
	{ "log", cmd_log, "[OPTIONS] [PATH...]",
	  "versions of paths, newest first",
	  FILTER_OPTIONS
	  "      --all           include deleted paths (when no PATH is given)\n"
	  "      --json          one JSON document\n" },
	{ "show", cmd_show, "[OPTIONS] ID | PATH [--at SEQ|TIME]",
	  "the exact content of a version",
	  "      --at SEQ|TIME   the version PATH showed then\n"
	  "      --json          the version and its content as JSON\n" },
	{ "diff", cmd_diff, "[OPTIONS] A [B]",
	  "unified diff of two versions (B: the live version of A's path)",
	  "  -U, --unified N     lines of context (default 3)\n"
	  "      --keys          changed JSON keys instead of lines\n"
	  "      --json          one JSON document\n" },
	{ "status", cmd_status, "[OPTIONS]",
	  "every live path, its last change, and rejections since",
	  "      --json          one JSON document\n" },
	{ "journal", cmd_journal, "[OPTIONS] [PATH...]",
	  "every head move (commit, activate, rollback, delete, restore, rename)",
	  FILTER_OPTIONS
	  "      --all           accepted for symmetry with log (the journal\n"
	  "                      always includes deleted paths)\n"
	  "      --json          one JSON document\n" },
	{ "tree", cmd_tree, "[OPTIONS] [--at SEQ|TIME]",
	  "the whole tree, now or as it was then",
	  "      --at SEQ|TIME   the tree right after that journal entry\n"
	  "      --json          one JSON document\n" },
	{ "activate", cmd_activate, "[OPTIONS] ID",
	  "make version ID the live version of its path (through .control)", "" },
	{ "rollback", cmd_rollback, "[OPTIONS] PATH [--to ID | --at SEQ|TIME]",
	  "move PATH back (through .control)",
	  "      --to ID         to version ID (which must be PATH's)\n"
	  "      --at SEQ|TIME   to the version PATH showed then\n"
	  "                      (default: to what PATH showed before its\n"
	  "                      last change)\n" },
	{ "restore", cmd_restore, "[OPTIONS] --at SEQ|TIME",
	  "the whole tree back to a point in time (through .control)",
	  "      --at SEQ|TIME   the point to go back to\n" },
	{ "fsck", cmd_fsck, "[OPTIONS]",
	  "check the store's integrity",
	  "      --json          one JSON document\n" },
	{ "export", cmd_export, "[OPTIONS] [--at SEQ|TIME] DIR",
	  "write the tree out as plain files (DIR must be missing or empty)",
	  "      --at SEQ|TIME   the tree as it was then\n"
	  "      --json          a JSON summary\n" },
	{ "import", cmd_import, "[OPTIONS] DIR",
	  "commit the files under DIR into a store that no daemon serves",
	  "      --json          a JSON summary\n" },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const char common_help[] =
	"  -C MOUNTDIR         use the store served at MOUNTDIR\n"
	"      --store FILE    use the store FILE\n"
	"      --color[=WHEN]  colour: auto (default), always, never\n"
	"  -h, --help          this help\n";

const struct command *find_command(const char *name)
{
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (strcmp(cmd->name, name) == 0)
			return cmd;
	return NULL;
}

static void print_main_help(FILE *out)
{
	fprintf(out, "Usage: verconf [-C MOUNTDIR | --store FILE] COMMAND [OPTIONS] [ARGS]\n"
		     "\nQuery the versions kept by verconfd, and steer a mount.\n\nCommands:\n");
	for (const struct command *cmd = commands; cmd->name; cmd++)
		fprintf(out, "  %-10s %s\n", cmd->name, cmd->summary);
	fprintf(out, "\nOptions (before or after the command):\n%s"
		     "      --version       print the version\n"
		     "\nThe store is --store FILE, else the one served at -C MOUNTDIR,\n"
		     "else $VERCONF_STORE.  Exit status: 0 ok, 1 not found or differs,\n"
		     "2 usage, 3 store or mount error.  See verconf(1); `verconf COMMAND\n"
		     "--help` for a command's options.\n",
		common_help);
}

static void print_command_help(const struct command *cmd)
{
	printf("Usage: verconf %s %s\n\n%c%s.\n\nOptions:\n%s%s", cmd->name, cmd->synopsis,
	       toupper((unsigned char)cmd->summary[0]), cmd->summary + 1, cmd->options, common_help);
}

int usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "verconf%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'verconf %s%s--help'.\n", cmd ? cmd->name : "", cmd ? " " : "");
	return EXIT_USAGE;
}

static bool parse_color_mode(const char *arg, enum color_mode *mode)
{
	if (!arg || strcmp(arg, "always") == 0)
		*mode = COLOR_ALWAYS;
	else if (strcmp(arg, "auto") == 0)
		*mode = COLOR_AUTO;
	else if (strcmp(arg, "never") == 0)
		*mode = COLOR_NEVER;
	else
		return false;
	return true;
}

int common_option(struct ctx *c, const struct command *cmd, int opt, const char *arg)
{
	switch (opt) {
	case OPT_STORE:
		c->store_arg = arg;
		return 1;
	case 'C':
		c->mount_arg = arg;
		return 1;
	case OPT_COLOR:
		if (!parse_color_mode(arg, &c->color_mode))
			exit(usage_error(cmd, "--color must be auto, always or never, not '%s'", arg));
		return 1;
	case OPT_JSON:
		c->json = true;
		return 1;
	case 'h':
	case OPT_HELP:
		print_command_help(cmd);
		exit(EXIT_OK);
	case '?': /* getopt has printed what was wrong */
		exit(usage_error(cmd, "bad option"));
	default:
		return 0;
	}
}

int fail(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("verconf: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int store_fail(struct ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;
	fputs("verconf: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	const char *msg = c->store ? vc_errmsg(c->store) : NULL;
	fprintf(stderr, ": %s\n", msg && *msg ? msg : strerror(-rc));
	return rc == -ENOENT ? EXIT_NOTFOUND : EXIT_STORE;
}

/* The store a mount serves, from the "store:" line of its .control. */
static int store_of_mount(struct ctx *c)
{
	char *status;
	int rc = read_control_status(c->mount_arg, &status);
	if (rc == -ENOENT || rc == -ENOTDIR)
		return fail(EXIT_STORE, "%s is not a verconfd mount (it has no .control)",
			    c->mount_arg);
	if (rc < 0)
		return fail(EXIT_STORE, "cannot read %s/.control: %s%s", c->mount_arg,
			    strerror(-rc), rc == -EACCES ? " (it belongs to the user who mounted)" : "");
	c->store_file = status_value(status, "store");
	free(status);
	if (!c->store_file)
		return fail(EXIT_STORE, "%s/.control names no store", c->mount_arg);
	return EXIT_OK;
}

int resolve_store_file(struct ctx *c)
{
	int rc;
	if (c->mount_arg && (rc = find_mount(c, false)) != EXIT_OK)
		return rc;
	if (c->store_arg) {
		c->store_file = strdup(c->store_arg);
		return EXIT_OK;
	}
	if (c->mount_arg)
		return store_of_mount(c);
	const char *env = getenv("VERCONF_STORE");
	if (env && *env) {
		c->store_file = strdup(env);
		return EXIT_OK;
	}
	return usage_error(NULL, "no store given: use --store FILE, -C MOUNTDIR, "
				 "or set VERCONF_STORE");
}

int open_store(struct ctx *c)
{
	int rc = resolve_store_file(c);
	if (rc != EXIT_OK)
		return rc;
	char err[512] = "";
	vc_actor me = { .uid = getuid(), .gid = getgid(), .pid = getpid(), .comm = "verconf" };
	rc = vc_open(c->store_file, VC_OPEN_READONLY, &me, &c->store, err, sizeof err);
	if (rc < 0)
		/* The store's messages name the file already. */
		return *err ? fail(EXIT_STORE, "%s", err)
			    : fail(EXIT_STORE, "%s: %s", c->store_file, strerror(-rc));
	return EXIT_OK;
}

void close_ctx(struct ctx *c)
{
	if (c->store)
		vc_close(c->store);
	free(c->store_file);
	free(c->mount_dir);
}

static void resolve_color(struct ctx *c)
{
	switch (c->color_mode) {
	case COLOR_ALWAYS:
		c->color = true;
		break;
	case COLOR_NEVER:
		c->color = false;
		break;
	case COLOR_AUTO:
		c->color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
		break;
	}
}

int parse_options(struct ctx *c, const struct command *cmd, int argc, char **argv,
		  const char *shortopts, const struct option *longopts, option_fn own, void *state,
		  int *first)
{
	int opt;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (common_option(c, cmd, opt, optarg))
			continue;
		int rc = own ? own(state, opt, optarg) : -1;
		if (rc < 0)
			return usage_error(cmd, "bad option");
		if (rc != EXIT_OK)
			return rc;
	}
	resolve_color(c);
	*first = optind;
	return EXIT_OK;
}

/* Options before the command: the shared ones, --help and --version. */
static int parse_global_options(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_OPTIONS, { "version", no_argument, NULL, 'V' }, OPTIONS_END
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "+" COMMON_SHORT, longopts, NULL)) != -1) {
		if (opt == 'h' || opt == OPT_HELP) {
			print_main_help(stdout);
			exit(EXIT_OK);
		}
		if (opt == 'V') {
			printf("verconf %s\n", VERCONF_VERSION);
			exit(EXIT_OK);
		}
		if (opt == '?')
			exit(usage_error(NULL, "bad option"));
		common_option(c, NULL, opt, optarg);
	}
	return optind;
}

int main(int argc, char **argv)
{
	struct ctx c = { .color_mode = COLOR_AUTO };
	int first = parse_global_options(&c, argc, argv);
	if (first >= argc) {
		print_main_help(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[first];
	if (strcmp(name, "help") == 0) {
		const struct command *cmd = first + 1 < argc ? find_command(argv[first + 1]) : NULL;
		if (cmd)
			print_command_help(cmd);
		else
			print_main_help(stdout);
		return EXIT_OK;
	}
	const struct command *cmd = find_command(name);
	if (!cmd)
		return usage_error(NULL, "unknown command '%s'", name);
	/* Each command parses its own arguments; argv[0] is its name.  optind
	 * 0 makes glibc's getopt start afresh. */
	optind = 0;
	int argn = argc - first;
	char **args = argv + first;
	int rc = cmd->run(&c, argn, args);
	if (fflush(stdout) != 0 && rc == EXIT_OK)
		rc = fail(EXIT_STORE, "writing output: %s", strerror(errno));
	close_ctx(&c);
	return rc;
}
