/*
 * tool_fixture STORE: build a store with the history verconf(1)'s tests
 * look at, through the store API (as verconfd would write it), and print
 * what was made as shell assignments (NAME=value) for the test to eval.
 *
 * History: writes by two users (alice 60001 with vim, bob 60002 with
 * ansible), a binary file, paths with quotes, spaces, unicode and a
 * newline, a symlink; a "deploy" a second later (nested JSON changes, a
 * rejected JSON), a rename, a delete and its restore, a multi-file restore
 * to before the deploy, and finally one more rejected write.
 *
 * tool_fixture hold STORE: open STORE as its writer (as a daemon would),
 * print "ready", and keep it until standard input ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static vc_store *store;
static const vc_actor alice = { 60001, 60001, 4242, "vim" };
static const vc_actor bob = { 60002, 60002, 5151, "ansible" };
static const vc_actor admin = { 0, 0, 1, "verconf" };

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "tool_fixture: %s: %s (%s)\n", what, strerror(-rc), vc_errmsg(store));
		exit(1);
	}
}

static vc_id put(const char *path, enum vc_kind kind, const char *data, size_t len,
		 const vc_actor *who, enum vc_status status, const char *reason)
{
	vc_commit_req req = {
		.path = path, .kind = kind, .op = kind == VC_DIR ? VC_OP_MKDIR
						  : kind == VC_SYMLINK ? VC_OP_SYMLINK : VC_OP_WRITE,
		.data = data, .len = len, .mode = kind == VC_DIR ? 0755 : 0644,
		.uid = who->uid, .gid = who->gid, .status = status, .reason = reason, .actor = who,
	};
	vc_id id;
	check(vc_commit(store, &req, &id, NULL), path);
	return id;
}

static vc_id put_text(const char *path, const char *text, const vc_actor *who)
{
	return put(path, VC_FILE, text, strlen(text), who, VC_ACCEPTED, NULL);
}

static vc_id last_seq(void)
{
	vc_id seq;
	check(vc_last_seq(store, &seq), "last seq");
	return seq;
}

/* A second's gap, so that times given to --at and --since to the second
 * fall between the phases. */
static void next_second(void)
{
	struct timespec ts = { 1, 100000000 };
	nanosleep(&ts, NULL);
}

static void print_now(const char *name)
{
	char buf[32];
	time_t t = time(NULL);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	printf("%s=%s\n", name, buf);
}

static const char cfg1[] =
	"{\n  \"database\": {\"host\": \"db1\", \"port\": 5432},\n"
	"  \"feature_flags\": {\"old_ui\": true},\n  \"servers\": [\"a\", \"b\"]\n}\n";
static const char cfg2[] =
	"{\n  \"database\": {\"host\": \"db1\", \"port\": 5433},\n"
	"  \"feature_flags\": {\"old_ui\": true, \"new_api\": true},\n  \"servers\": [\"a\", \"c\"]\n}\n";
static const char binary[] = { 'B', 'I', 'N', 0, 1, 2, 0, (char)0xff, '\n' };

static void initial_tree(void)
{
	printf("CONFD=%lld\n", (long long)put("conf.d", VC_DIR, NULL, 0, &admin, VC_ACCEPTED, NULL));
	printf("CFG1=%lld\n", (long long)put_text("config.json", cfg1, &alice));
	printf("DB1=%lld\n", (long long)put_text("conf.d/10-db.json", "{\"pool\": 5}\n", &alice));
	printf("NOTES1=%lld\n", (long long)put_text("notes.txt", "hello\n", &bob));
	printf("BIN1=%lld\n", (long long)put("blob.bin", VC_FILE, binary, sizeof binary, &bob,
					     VC_ACCEPTED, NULL));
	printf("ODD1=%lld\n", (long long)put_text("odd name 'q\" \xc3\xbc.txt", "odd\n", &alice));
	printf("NL1=%lld\n", (long long)put_text("line\nbreak.txt", "newline\n", &alice));
	printf("LINK1=%lld\n", (long long)put("current.json", VC_SYMLINK, "config.json", 11, &alice,
					      VC_ACCEPTED, NULL));
}

/* Returns the id of the last 10-db.json version, deleted at the end. */
static vc_id deploy(void)
{
	vc_entry e;
	printf("CFG2=%lld\n", (long long)put_text("config.json", cfg2, &bob));
	vc_id db2 = put_text("conf.d/10-db.json", "{\"pool\": 10}\n", &bob);
	printf("DB2=%lld\n", (long long)db2);
	printf("REJ1=%lld\n", (long long)put("config.json", VC_FILE, "{\"database\": ", 13, &bob,
					     VC_REJECTED, "invalid JSON at line 1"));
	check(vc_rename(store, "notes.txt", "readme.txt", 0, &alice), "rename");
	check(vc_lookup(store, "readme.txt", &e), "lookup readme.txt");
	printf("README1=%lld\n", (long long)e.head.id);
	check(vc_delete(store, "conf.d/10-db.json", &alice), "delete");
	printf("SEQ_DELETED=%lld\n", (long long)last_seq());
	return db2;
}

static void open_writer(const char *file)
{
	char err[256] = "";
	int rc = vc_open(file, VC_OPEN_CREATE | VC_OPEN_WRITER | VC_OPEN_SYNC_NORMAL, &admin, &store,
			 err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "tool_fixture: %s: %s\n", file, err);
		exit(1);
	}
}

static int hold(const char *file)
{
	open_writer(file);
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	vc_close(store);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "hold") == 0)
		return hold(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: tool_fixture STORE | tool_fixture hold STORE\n");
		return 2;
	}
	open_writer(argv[1]);
	initial_tree();
	vc_id before_deploy = last_seq();
	printf("SEQ_BEFORE_DEPLOY=%lld\n", (long long)before_deploy);
	next_second();
	print_now("T_BEFORE_DEPLOY");
	next_second();
	vc_id db2 = deploy();
	check(vc_activate(store, db2, "conf.d/10-db.json", &admin), "activate (undelete)");
	printf("SEQ_UNDELETED=%lld\n", (long long)last_seq());
	next_second();
	print_now("T_BEFORE_RESTORE");
	next_second();
	check(vc_restore(store, before_deploy, &admin), "restore");
	printf("SEQ_RESTORED=%lld\n", (long long)last_seq());
	printf("REJ2=%lld\n", (long long)put("conf.d/10-db.json", VC_FILE, "{pool", 5, &bob,
					     VC_REJECTED, "invalid JSON: expected a key"));
	printf("SEQ_LAST=%lld\n", (long long)last_seq());
	vc_close(store);
	return 0;
}
