/*
 * verconf: the store as a whole: `fsck`, `export` and `import`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "verconf.h"

/* ---- fsck ------------------------------------------------------------ */

static int report_problem(const char *problem, void *ctx)
{
	cJSON *problems = ctx;
	if (problems)
		cJSON_AddItemToArray(problems, json_text(problem));
	else
		printf("%s\n", problem);
	return 0;
}

int cmd_fsck(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_OPTIONS, JSON_OPTION, OPTIONS_END };
	const struct command *cmd = find_command("fsck");
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, longopts, NULL, NULL, &first);
	if (rc != EXIT_OK)
		return rc;
	if (first < argc)
		return usage_error(cmd, "fsck takes no arguments");
	if ((rc = open_store(c)) != EXIT_OK)
		return rc;
	cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
	cJSON *problems = doc ? cJSON_AddArrayToObject(doc, "problems") : NULL;
	int n = vc_fsck(c->store, report_problem, problems);
	if (n < 0) {
		cJSON_Delete(doc);
		return store_fail(c, n, "checking %s", c->store_file);
	}
	if (doc) {
		json_set_text(doc, "store", c->store_file);
		cJSON_AddBoolToObject(doc, "ok", n == 0);
		rc = json_print(doc);
	} else if (n == 0) {
		printf("%s: ok\n", c->store_file);
	} else {
		fprintf(stderr, "verconf: %s: %d problem%s\n", c->store_file, n, n == 1 ? "" : "s");
	}
	return rc != EXIT_OK ? rc : n ? EXIT_DIFFERS : EXIT_OK;
}

/* ---- export ---------------------------------------------------------- */

/* Files are made relative to an fd of DIR (the *at calls): a store path
 * may be up to 4095 bytes, and DIR in front would pass PATH_MAX. */
struct export_state {
	struct ctx *c;
	const char *dir;
	int dirfd;
	bool keep_owner; /* only root can give files away */
	int files, dirs, symlinks;
};

/* DIR must be missing (it is made) or an empty directory: nothing already
 * there can be overwritten, or followed. */
static int prepare_export_dir(const char *dir)
{
	if (mkdir(dir, 0700) == 0)
		return EXIT_OK;
	if (errno != EEXIST)
		return fail(EXIT_STORE, "%s: %s", dir, strerror(errno));
	DIR *d = opendir(dir);
	if (!d)
		return fail(EXIT_STORE, "%s: %s", dir, strerror(errno));
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty ? EXIT_OK : fail(EXIT_USAGE, "%s is not empty", dir);
}

static void set_times(int dirfd, const char *file, int64_t ns)
{
	struct timespec ts[2] = { { ns / 1000000000, ns % 1000000000 },
				  { ns / 1000000000, ns % 1000000000 } };
	utimensat(dirfd, file, ts, AT_SYMLINK_NOFOLLOW);
}

/* Owner, mode and time, in that order: chown clears the set-id bits, and
 * chmod must come after the last write into a directory. */
static int apply_metadata(struct export_state *st, const char *file, const vc_entry *e)
{
	const vc_version *v = &e->head;
	if (st->keep_owner && fchownat(st->dirfd, file, v->uid, v->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (v->kind != VC_SYMLINK && fchmodat(st->dirfd, file, v->mode & 07777, 0) < 0)
		return -errno;
	set_times(st->dirfd, file, e->mtime_ns);
	return 0;
}

static int write_content(struct export_state *st, const char *file, const vc_version *v)
{
	void *buf = NULL;
	size_t len = 0;
	int rc = vc_read_content(st->c->store, v->id, &buf, &len);
	if (rc < 0)
		return rc;
	if (v->kind == VC_SYMLINK) {
		char *target = strndup(buf ? buf : "", len);
		rc = symlinkat(target, st->dirfd, file) < 0 ? -errno : 0;
		free(target);
	} else {
		int fd = openat(st->dirfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				0600);
		rc = fd < 0 ? -errno : write_all(fd, buf, len);
		if (fd >= 0 && close(fd) < 0 && rc == 0)
			rc = -errno;
	}
	free(buf);
	return rc;
}

static int export_entry(struct export_state *st, const char *name, const vc_entry *e)
{
	int rc;
	if (vc_path_check(name) < 0)
		return fail(EXIT_STORE, "refusing to export a bad path from the store: %s", name);
	if (e->head.kind == VC_DIR) {
		/* Made writable now; its own mode is set once its children are in. */
		rc = mkdirat(st->dirfd, name, 0700) < 0 ? -errno : 0;
		st->dirs++;
	} else {
		rc = write_content(st, name, &e->head);
		if (rc == 0)
			rc = apply_metadata(st, name, e);
		e->head.kind == VC_SYMLINK ? st->symlinks++ : st->files++;
	}
	if (rc < 0)
		rc = fail(EXIT_STORE, "%s/%s: %s", st->dir, name, strerror(-rc));
	return rc;
}

/* Directories last, deepest first (the reverse of path order). */
static int finish_dirs(struct export_state *st, const struct entry_list *l)
{
	for (size_t i = l->n; i-- > 0;) {
		const struct listed_entry *it = &l->items[i];
		if (it->e.head.kind != VC_DIR)
			continue;
		const char *file = *it->name ? it->name : ".";
		int rc = apply_metadata(st, file, &it->e);
		if (rc < 0)
			return fail(EXIT_STORE, "%s/%s: %s", st->dir, file, strerror(-rc));
	}
	return EXIT_OK;
}

static int export_tree(struct export_state *st, const struct entry_list *l)
{
	int rc = EXIT_OK;
	for (size_t i = 0; i < l->n && rc == EXIT_OK; i++)
		if (*l->items[i].name) /* the root is DIR itself */
			rc = export_entry(st, l->items[i].name, &l->items[i].e);
	return rc == EXIT_OK ? finish_dirs(st, l) : rc;
}

static int report_export(const struct ctx *c, const struct export_state *st, vc_id seq)
{
	if (!c->json) {
		printf("exported %d files, %d directories, %d symlinks (sequence %" PRId64 ") to %s\n",
		       st->files, st->dirs, st->symlinks, seq, st->dir);
		return EXIT_OK;
	}
	cJSON *doc = cJSON_CreateObject();
	json_add_int(doc, "seq", seq);
	json_set_text(doc, "dir", st->dir);
	json_add_int(doc, "files", st->files);
	json_add_int(doc, "directories", st->dirs);
	json_add_int(doc, "symlinks", st->symlinks);
	return json_print(doc);
}

int cmd_export(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_OPTIONS, JSON_OPTION, { "at", required_argument, NULL, OPT_AT }, OPTIONS_END
	};
	const struct command *cmd = find_command("export");
	struct at_option a = { 0 };
	struct entry_list l = { 0 };
	vc_id seq;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, longopts, at_option, &a,
				      &first);
	if (rc != EXIT_OK)
		return rc;
	if (argc - first != 1)
		return usage_error(cmd, "give one DIR");
	if ((rc = open_store(c)) != EXIT_OK)
		return rc;
	if (a.at)
		rc = parse_at(c, a.at, &seq);
	else if ((rc = vc_last_seq(c->store, &seq)) < 0)
		rc = store_fail(c, rc, "reading the journal");
	if (rc == EXIT_OK && (rc = vc_tree_at(c->store, seq, collect_entry, &l)) < 0)
		rc = store_fail(c, rc, "reading the tree at sequence %" PRId64, seq);
	struct export_state st = { .c = c, .dir = argv[first], .dirfd = -1,
				   .keep_owner = geteuid() == 0 };
	if (rc == EXIT_OK)
		rc = prepare_export_dir(st.dir);
	if (rc == EXIT_OK && (st.dirfd = open(st.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		rc = fail(EXIT_STORE, "%s: %s", st.dir, strerror(errno));
	if (rc == EXIT_OK)
		rc = export_tree(&st, &l);
	if (st.dirfd >= 0)
		close(st.dirfd);
	if (rc == EXIT_OK)
		rc = report_export(c, &st, seq);
	free_entries(&l);
	return rc;
}

/* ---- import ---------------------------------------------------------- */

struct import_state {
	struct ctx *c;
	vc_actor actor;
	int created, unchanged, skipped;
};

static int read_file(const char *file, char **buf, size_t *len)
{
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf)
		abort();
	*len = 0;
	ssize_t n;
	while ((n = read(fd, *buf + *len, (size_t)st.st_size - *len)) > 0)
		*len += (size_t)n;
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* The bytes a file or symlink holds; none for a directory. */
static int node_content(const char *file, const struct stat *sb, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (S_ISREG(sb->st_mode))
		return read_file(file, buf, len);
	if (!S_ISLNK(sb->st_mode))
		return 0;
	*buf = malloc((size_t)sb->st_size + 1);
	ssize_t n = *buf ? readlink(file, *buf, (size_t)sb->st_size + 1) : -1;
	if (n < 0 || n > sb->st_size)
		return n < 0 ? -errno : -EIO;
	*len = (size_t)n;
	return 0;
}

static int import_node(struct import_state *st, const char *file, const char *path,
		       const struct stat *sb)
{
	vc_commit_req req = {
		.path = path, .op = VC_OP_IMPORT, .mode = sb->st_mode & 07777,
		.uid = sb->st_uid, .gid = sb->st_gid, .status = VC_ACCEPTED, .actor = &st->actor,
		.kind = S_ISDIR(sb->st_mode) ? VC_DIR : S_ISLNK(sb->st_mode) ? VC_SYMLINK : VC_FILE,
	};
	char *buf;
	int created = 0, rc = node_content(file, sb, &buf, &req.len);
	if (rc < 0) {
		free(buf);
		return fail(EXIT_STORE, "%s: %s", file, strerror(-rc));
	}
	req.data = buf;
	rc = vc_commit(st->c->store, &req, NULL, &created);
	free(buf);
	if (rc < 0)
		return store_fail(st->c, rc, "importing %s as %s", file, display_path(path));
	created ? st->created++ : st->unchanged++;
	return EXIT_OK;
}

static int import_dir(struct import_state *st, const char *dir, const char *prefix);

static int import_child(struct import_state *st, const char *dir, const char *prefix,
			const char *name)
{
	char *file, *path;
	struct stat sb;
	int rc = EXIT_OK;
	if (asprintf(&file, "%s/%s", dir, name) < 0 ||
	    asprintf(&path, "%s%s%s", prefix, *prefix ? "/" : "", name) < 0)
		abort();
	if (lstat(file, &sb) < 0) {
		rc = fail(EXIT_STORE, "%s: %s", file, strerror(errno));
	} else if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
		fprintf(stderr, "verconf: %s: not a file, directory or symlink: skipped\n", file);
		st->skipped++;
	} else if ((rc = import_node(st, file, path, &sb)) == EXIT_OK && S_ISDIR(sb.st_mode)) {
		rc = import_dir(st, file, path);
	}
	free(file);
	free(path);
	return rc;
}

/* In byte order of names, so that imports are reproducible. */
static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static int import_dir(struct import_state *st, const char *dir, const char *prefix)
{
	struct dirent **names;
	int n = scandir(dir, &names, not_dots, by_name), rc = EXIT_OK;
	if (n < 0)
		return fail(EXIT_STORE, "%s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		if (rc == EXIT_OK)
			rc = import_child(st, dir, prefix, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return rc;
}

static int open_store_writer(struct ctx *c, const vc_actor *me)
{
	char err[512] = "";
	int rc = vc_open(c->store_file, VC_OPEN_WRITER | VC_OPEN_CREATE, me, &c->store, err,
			 sizeof err);
	if (rc == -EBUSY)
		return fail(EXIT_STORE, "%s is served by a daemon (verconfd holds its writer lock): "
					"copy the files into its mount instead", c->store_file);
	if (rc < 0)
		return fail(EXIT_STORE, "%s: %s", c->store_file, *err ? err : strerror(-rc));
	return EXIT_OK;
}

static int report_import(const struct ctx *c, const struct import_state *st)
{
	if (!c->json) {
		printf("imported into %s: %d new versions, %d unchanged, %d skipped\n", c->store_file,
		       st->created, st->unchanged, st->skipped);
		return EXIT_OK;
	}
	cJSON *doc = cJSON_CreateObject();
	json_set_text(doc, "store", c->store_file);
	json_add_int(doc, "created", st->created);
	json_add_int(doc, "unchanged", st->unchanged);
	json_add_int(doc, "skipped", st->skipped);
	return json_print(doc);
}

int cmd_import(struct ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = { COMMON_OPTIONS, JSON_OPTION, OPTIONS_END };
	const struct command *cmd = find_command("import");
	struct import_state st = {
		.c = c, .actor = { .uid = getuid(), .gid = getgid(), .pid = getpid(), .comm = "verconf" },
	};
	struct stat sb;
	int first, rc = parse_options(c, cmd, argc, argv, COMMON_SHORT, longopts, NULL, NULL, &first);
	if (rc != EXIT_OK)
		return rc;
	if (argc - first != 1)
		return usage_error(cmd, "give one DIR");
	if (c->mount_arg)
		return usage_error(cmd, "import writes a store that no daemon serves: give --store "
					"FILE, not -C MOUNTDIR");
	const char *dir = argv[first];
	if (stat(dir, &sb) < 0)
		return fail(EXIT_USAGE, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return fail(EXIT_USAGE, "%s: not a directory", dir);
	if ((rc = resolve_store_file(c)) != EXIT_OK || (rc = open_store_writer(c, &st.actor)) != EXIT_OK)
		return rc;
	rc = import_dir(&st, dir, "");
	return rc == EXIT_OK ? report_import(c, &st) : rc;
}
