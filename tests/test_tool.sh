#!/usr/bin/env bash
# Tests of verconf(1), one scenario per meson test:
#   test_tool.sh SCENARIO VERCONF TOOL_FIXTURE [VERCONFD]
# Each scenario works in its own mktemp -d directory, on a store built by
# tool_fixture (the history it prints is eval'd: CFG1, REJ1, SEQ_...), or
# for the mount scenarios on a store served by a real verconfd.
# Exit 77 (meson: skipped) when a scenario cannot run here.
set -euo pipefail

scenario=$1
VERCONF=$(realpath "$2")
FIXTURE=$(realpath "$3")
VERCONFD=${4:+$(realpath "$4")}
work=$(mktemp -d)
mnt=$work/mnt
daemon_pid=
export TZ=UTC LC_ALL=C.UTF-8 NO_COLOR=
unset VERCONF_STORE

cleanup() {
	if [ -n "$daemon_pid" ]; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL ($scenario): $*" >&2
	for f in out err; do
		[ -s "$work/$f" ] && { echo "--- $f:" >&2; head -40 "$work/$f" >&2; }
	done
	exit 1
}

# run WANT_RC CMD...: run CMD, stdout to $work/out, stderr to $work/err.
run() {
	local want=$1 got=0
	shift
	"$@" >"$work/out" 2>"$work/err" || got=$?
	[ "$got" -eq "$want" ] || fail "exit $got, wanted $want: $*"
}

vc() { "$VERCONF" --store "$work/s.db" "$@"; }

# has TEXT [FILE]: FILE (default out) contains the fixed string TEXT.
has() { grep -qF -- "$1" "$work/${2:-out}" || fail "no '$1' in ${2:-out}"; }
hasnt() { ! grep -qF -- "$1" "$work/${2:-out}" || fail "unexpected '$1' in ${2:-out}"; }

# py 'CODE': run python with d = the JSON document in out; env vars as E.
py() {
	python3 -c "import json, os, sys
E = os.environ
d = json.load(open('$work/out'))
$1" || fail "JSON check failed: $1"
}

# header WORDS...: the table's first line, spaces squeezed.
header() {
	[ "$(head -1 "$work/out" | tr -s ' ')" = "$*" ] || fail "header is '$(head -1 "$work/out")'"
}

# row KEY: the table line whose first column is KEY, spaces squeezed.
row() { awk -v k="$1" '$1 == k { $1 = $1; print }' "$work/out"; }
# rows: every table line, spaces squeezed.
rows() { awk '{ $1 = $1; print }' "$work/out"; }

make_store() {
	"$FIXTURE" "$work/s.db" >"$work/vars" || fail "fixture failed"
	set -a
	. "$work/vars"
	set +a
}

# ---- scenarios ---------------------------------------------------------

t_help() {
	local cmds="log show diff status journal tree activate rollback restore fsck export import"
	run 0 "$VERCONF" --help
	for cmd in $cmds; do
		has "  $cmd "
	done
	for cmd in $cmds; do
		run 0 "$VERCONF" "$cmd" --help
		has "Usage: verconf $cmd"
	done
	# The man page documents each command and its JSON.
	local man
	man=$(dirname "$(realpath "$0")")/../tools/verconf.1
	for cmd in $cmds; do
		grep -qE "^(\\fB|\.BI? \"?)$cmd( |\\fR|$)" "$man" || fail "verconf.1 lacks $cmd"
	done
	run 2 "$VERCONF"
	run 2 "$VERCONF" frobnicate
	has "unknown command" err
	run 2 "$VERCONF" log --no-such-option
	run 0 "$VERCONF" --version
	has "verconf "
}

t_store_finding() {
	run 2 "$VERCONF" log
	has "no store given" err
	echo "not a database" >"$work/text"
	run 3 "$VERCONF" --store "$work/text" log
	has "$work/text" err
	run 3 "$VERCONF" --store "$work/missing.db" log
	make_store
	VERCONF_STORE=$work/s.db run 0 "$VERCONF" status
	has "config.json"
	# --store comes before VERCONF_STORE.
	VERCONF_STORE=$work/text run 0 "$VERCONF" --store "$work/s.db" status
	# Options may follow the command too.
	run 0 "$VERCONF" status --store "$work/s.db"
	# -C on a directory that is no mount.
	mkdir "$work/plain"
	run 3 "$VERCONF" -C "$work/plain" status
	has "not a verconfd mount" err
}

t_log() {
	make_store
	run 0 vc log
	header ID TIME OP USER PID PROCESS SIZE SHA256 PATH MARK
	local sha
	sha=$(vc show "$CFG1" | sha256sum | cut -c1-12)
	[ "$(row "$CFG1")" = "$CFG1 $(row "$CFG1" | cut -d' ' -f2) write 60001(60001) 4242 vim 110 $sha config.json live" ] ||
		fail "config.json row: $(row "$CFG1")"
	row "$CFG1" | cut -d' ' -f2 | grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00$' ||
		fail "time format: $(row "$CFG1")"
	row "$CFG2" | grep -q "60002(60002) 5151 ansible" || fail "bob's row: $(row "$CFG2")"
	row "$REJ1" | grep -q "config.json rejected: invalid JSON at line 1$" || fail "rejected row"
	row 1 | grep -q "mkdir root(0) 1 verconf 0 - / live$" || fail "root row: $(row 1)"
	# Deleted paths only with --all.
	hasnt readme.txt
	run 0 vc log --all
	has readme.txt
	# Newest first.
	[ "$(awk 'NR > 1 {print $1}' "$work/out" | sort -rn | tr '\n' ' ')" = \
	  "$(awk 'NR > 1 {print $1}' "$work/out" | tr '\n' ' ')" ] || fail "not newest first"
	# Local times.
	TZ=Asia/Kolkata run 0 vc log -n 1
	awk 'NR == 2 {print $2}' "$work/out" | grep -q '+05:30$' || fail "local time: $(cat "$work/out")"
	# Colour only on a terminal, or when asked.
	hasnt $'\033['
	run 0 vc log --color=always -n 3
	has $'\033[1mID'
	has $'\033[31m'
	run 0 vc log --color=never -n 3
	hasnt $'\033['
	run 2 vc log --color=sometimes
	run 1 vc log no/such/path
	has "no such path" err
}

t_log_json() {
	make_store
	run 0 vc log --json
	py '
v = d["versions"]
ids = [x["id"] for x in v]
assert ids == sorted(ids, reverse=True), ids
c = next(x for x in v if x["id"] == int(E["CFG1"]))
assert c["path"] == "config.json" and c["op"] == "write" and c["kind"] == "file"
assert c["live"] is True and c["status"] == "accepted" and c["size"] == 110
assert c["mode"] == "0644" and c["uid"] == 60001 and c["owner"] == "60001"
assert c["actor"] == {"uid": 60001, "user": "60001", "gid": 60001, "pid": 4242, "comm": "vim"}
assert c["time"].endswith("Z") and isinstance(c["time_ns"], int) and c["time_ns"] > 1.7e18
assert len(c["sha256"]) == 64 and c["source"] is None
r = next(x for x in v if x["id"] == int(E["REJ1"]))
assert r["status"] == "rejected" and r["reason"] == "invalid JSON at line 1" and r["live"] is False
assert "reason" not in c
'
}

t_log_filters() {
	make_store
	run 0 vc log --user 60002 --json
	py 'assert d["versions"] and all(x["actor"]["uid"] == 60002 for x in d["versions"])'
	run 0 vc log --user root --json
	py 'assert d["versions"] and all(x["actor"]["uid"] == 0 for x in d["versions"])'
	run 0 vc log -n 2 --json
	py 'assert len(d["versions"]) == 2'
	run 0 vc log --since "$T_BEFORE_DEPLOY" --json
	py 'assert d["versions"] and all(x["id"] > int(E["LINK1"]) for x in d["versions"])'
	run 0 vc log --until "$T_BEFORE_DEPLOY" --json
	py 'assert d["versions"] and all(x["id"] <= int(E["LINK1"]) for x in d["versions"])'
	run 0 vc log --since 1h --json
	py 'assert len(d["versions"]) >= 10'
	run 0 vc log --since 2026-01-01 --until "$(date -u +%Y-%m-%dT%H:%M:%S)Z" --json
	run 0 vc log --since "$(date -d yesterday +%Y-%m-%d) 00:00" --json
	py 'assert len(d["versions"]) >= 10'
	run 0 vc log --since "$(date -u +%Y-%m-%dT%H:%M:%S)+01:00" --json
	py 'assert len(d["versions"]) >= 10'
	run 0 vc log --since "$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%S.5)+01:00" --json
	py 'assert d["versions"] == []'
	run 0 vc log --until 1d --json
	py 'assert d["versions"] == []'
	run 0 vc log config.json conf.d/10-db.json --json
	py 'assert {x["path"] for x in d["versions"]} == {"config.json", "conf.d/10-db.json"}'
	run 0 vc log readme.txt --json
	py 'assert [x["id"] for x in d["versions"]] == [int(E["README1"])]'
	run 2 vc log --since yesterday-ish
	run 2 vc log -n many
	run 2 vc log --user no-such-user-here
}

t_show() {
	make_store
	run 0 vc show config.json
	grep -q '"port": 5432' "$work/out" || fail "live config.json"
	run 0 vc show "$CFG2"
	grep -q '"port": 5433' "$work/out" || fail "show CFG2"
	# Binary safe: the exact bytes.
	vc show "$BIN1" >"$work/bin"
	printf 'BIN\0\1\2\0\377\n' | cmp - "$work/bin" || fail "binary content differs"
	run 0 vc show config.json --at "$SEQ_BEFORE_DEPLOY"
	grep -q '"port": 5432' "$work/out" || fail "--at SEQ"
	run 0 vc show config.json --at "$T_BEFORE_RESTORE"
	grep -q '"port": 5433' "$work/out" || fail "--at TIME"
	run 0 vc show config.json --at "@$SEQ_DELETED"
	grep -q '"port": 5433' "$work/out" || fail "--at @SEQ"
	run 0 vc show readme.txt --at "$T_BEFORE_RESTORE"
	[ "$(cat "$work/out")" = hello ] || fail "renamed file then"
	run 0 vc show "$REJ1"
	[ "$(cat "$work/out")" = '{"database": ' ] || fail "rejected content"
	run 0 vc show "$BIN1" --json
	py 'import base64; assert d["encoding"] == "base64" and base64.b64decode(d["content"]) == b"BIN\0\1\2\0\xff\n"'
	run 0 vc show config.json --json
	py 'assert d["encoding"] == "utf-8" and "5432" in d["content"] and d["version"]["live"]'
	run 1 vc show 99999
	has "no version 99999" err
	run 1 vc show readme.txt
	has "deleted" err
	run 1 vc show conf.d
	has "directory" err
	run 1 vc show readme.txt --at "$SEQ_BEFORE_DEPLOY"
	has "did not exist" err
	run 1 vc show config.json --at 99999
	run 2 vc show "$CFG1" --at 3
	run 2 vc show
	run 2 vc show config.json --at "not a time"
}

t_diff() {
	make_store
	run 1 vc diff "$CFG1" "$CFG2"
	has "--- config.json@$CFG1"
	has "+++ config.json@$CFG2"
	has '-  "database": {"host": "db1", "port": 5432},'
	has '+  "database": {"host": "db1", "port": 5433},'
	# B defaults to the live version (CFG1 after the restore).
	run 0 vc diff "$CFG1"
	[ ! -s "$work/out" ] || fail "equal versions printed a diff"
	run 1 vc diff "$CFG2"
	run 0 vc diff config.json "$CFG1"
	run 1 vc diff "$CFG1" "$CFG2" --json
	py '
assert d["equal"] is False and d["binary"] is False
assert d["a"]["id"] == int(E["CFG1"]) and d["b"]["id"] == int(E["CFG2"])
assert "+++ config.json@" in d["diff"]'
	run 0 vc diff "$CFG1" "$CFG1" --json
	py 'assert d["equal"] is True'
	run 1 vc diff "$BIN1" "$CFG1"
	has "Binary versions $BIN1 and $CFG1 differ"
	run 1 vc diff -U 0 "$CFG1" "$CFG2"
	has "@@ -2,3 +2,3 @@"
	# Colour only when asked (stdout is not a terminal here).
	run 1 vc diff "$CFG1" "$CFG2"
	hasnt $'\033['
	run 1 vc diff --color=always "$CFG1" "$CFG2"
	has $'\033['
	run 1 vc diff readme.txt
	run 2 vc diff conf.d
	run 2 vc diff
	run 2 vc diff 1 2 3
}

t_diff_keys() {
	make_store
	run 1 vc diff --keys "$CFG1" "$CFG2"
	[ "$(cat "$work/out")" = '.database.port: 5432 -> 5433
+.feature_flags.new_api: true
.servers[1]: "b" -> "c"' ] || fail "keys: $(cat "$work/out")"
	run 1 vc diff --keys "$CFG2" "$CFG1"
	has '-.feature_flags.new_api: true'
	run 1 vc diff --keys --json "$CFG1" "$CFG2"
	py '
ch = {c["key"]: c for c in d["changes"]}
assert ch[".database.port"] == {"key": ".database.port", "change": "changed", "old": 5432, "new": 5433}
assert ch[".feature_flags.new_api"] == {"key": ".feature_flags.new_api", "change": "added", "new": True}
assert ch[".servers[1]"]["old"] == "b" and d["equal"] is False and len(ch) == 3'
	run 0 vc diff --keys "$CFG1"
	# Not JSON.
	run 2 vc diff --keys "$REJ1"
	has "not valid JSON" err
}

t_status() {
	make_store
	run 0 vc status
	header PATH ID SIZE MODE OWNER CHANGED ACTION USER PID PROCESS FLAG
	row config.json | grep -qE "^config.json $CFG1 110 -rw-r--r-- 60001:60001 \S+ restore root\(0\) 1 verconf$" ||
		fail "config.json: $(row config.json)"
	row conf.d/10-db.json | grep -q " restore root(0) 1 verconf rejected $REJ2: invalid JSON: expected a key$" ||
		fail "rejection flag: $(row conf.d/10-db.json)"
	row blob.bin | grep -q "^blob.bin $BIN1 9 -rw-r--r-- 60002:60002 \S* commit 60002(60002) 5151 ansible$" ||
		fail "blob.bin: $(row blob.bin)"
	row conf.d | grep -q "^conf.d $CONFD 0 drwxr-xr-x root:root " || fail "conf.d: $(row conf.d)"
	hasnt readme.txt
	run 0 vc status --json
	py '
p = {x["path"]: x for x in d["paths"]}
assert "readme.txt" not in p and "notes.txt" in p and "" in p
c = p["config.json"]
assert c["id"] == int(E["CFG1"]) and c["live"] and c["rejected_since"] == 0 and c["last_rejected"] is None
assert c["last_change"]["action"] == "restore" and c["last_change"]["actor"]["uid"] == 0
assert c["last_change"]["seq"] <= int(E["SEQ_RESTORED"])
db = p["conf.d/10-db.json"]
assert db["rejected_since"] == 1 and db["last_rejected"]["id"] == int(E["REJ2"])
assert db["last_rejected"]["reason"] == "invalid JSON: expected a key"'
}

t_journal() {
	make_store
	run 0 vc journal
	header SEQ TIME ACTION USER PID PROCESS PATH FROM TO
	row "$SEQ_DELETED" | grep -q " delete 60001(60001) 4242 vim conf.d/10-db.json $DB2 -$" ||
		fail "delete: $(row "$SEQ_DELETED")"
	row "$SEQ_UNDELETED" | grep -q " activate root(0) 1 verconf conf.d/10-db.json - $DB2$" ||
		fail "undelete: $(row "$SEQ_UNDELETED")"
	rows | grep -q " rename .* notes.txt $NOTES1 -$" || fail "rename source"
	rows | grep -q " rename .* readme.txt - $README1$" || fail "rename target"
	[ "$(rows | grep -c ' restore ')" -ge 3 ] || fail "multi-file restore"
	run 0 vc journal --json
	py '
e = d["entries"]
seqs = [x["seq"] for x in e]
assert seqs == sorted(seqs, reverse=True) and seqs[0] == int(E["SEQ_LAST"])
acts = {x["action"] for x in e}
assert {"commit", "activate", "delete", "restore", "rename"} <= acts, acts
x = next(x for x in e if x["seq"] == int(E["SEQ_DELETED"]))
assert x["from"] == int(E["DB2"]) and x["to"] is None and x["path"] == "conf.d/10-db.json"
assert x["actor"]["uid"] == 60001 and x["time"].endswith("Z")'
	run 0 vc journal -n 3 --json
	py 'assert len(d["entries"]) == 3'
	run 0 vc journal config.json --json
	py 'assert d["entries"] and all(x["path"] == "config.json" for x in d["entries"])'
	run 0 vc journal config.json notes.txt -n 2 --json
	py 'assert len(d["entries"]) == 2 and {x["path"] for x in d["entries"]} <= {"config.json", "notes.txt"}'
	run 0 vc journal --user 60002 --json
	py 'assert len(d["entries"]) == 4 and all(x["action"] == "commit" and x["actor"]["uid"] == 60002 for x in d["entries"])'
	run 0 vc journal --since "$T_BEFORE_RESTORE" --json
	py 'assert d["entries"] and all(x["action"] == "restore" for x in d["entries"])'
}

t_tree() {
	make_store
	run 0 vc tree
	header MODE OWNER SIZE ID TIME PATH
	has "current.json -> config.json"
	row -rw-r--r-- | grep -q " $CFG1 \S* config.json$" || fail "config.json in tree"
	run 0 vc tree --at "$SEQ_BEFORE_DEPLOY" --json
	py '
p = {x["path"]: x for x in d["entries"]}
assert d["seq"] == int(E["SEQ_BEFORE_DEPLOY"]) and d["time"].endswith("Z")
assert "notes.txt" in p and "readme.txt" not in p and p["config.json"]["id"] == int(E["CFG1"])
assert p["current.json"]["kind"] == "symlink" and p["current.json"]["target"] == "config.json"
assert p["conf.d"]["kind"] == "dir" and p[""]["kind"] == "dir"'
	run 0 vc tree --at "$T_BEFORE_RESTORE" --json
	py '
p = {x["path"]: x for x in d["entries"]}
assert "readme.txt" in p and "notes.txt" not in p and p["config.json"]["id"] == int(E["CFG2"])
assert p["conf.d/10-db.json"]["id"] == int(E["DB2"])'
	run 0 vc tree --at "$SEQ_DELETED" --json
	py 'assert "conf.d/10-db.json" not in {x["path"] for x in d["entries"]}'
	run 0 vc tree --at 2000-01-01 --json
	py 'assert d["seq"] == 0 and d["entries"] == []'
	run 1 vc tree --at 99999
	run 2 vc tree extra
}

# Paths with quotes, spaces, unicode and a newline go through untouched.
t_paths() {
	make_store
	local odd="odd name 'q\" ü.txt" nl=$'line\nbreak.txt'
	run 0 vc show "$odd"
	[ "$(cat "$work/out")" = odd ] || fail "odd path"
	run 0 vc show "/$odd"
	run 0 vc show "./$odd"
	run 0 vc log "$nl"
	has 'line\nbreak.txt'
	run 0 vc log "$nl" --json
	py 'assert d["versions"][0]["path"] == "line\nbreak.txt"'
	run 0 vc show "$nl"
	[ "$(cat "$work/out")" = newline ] || fail "newline path"
	run 0 vc show conf.d/10-db.json/
	run 1 vc show "config.json' OR '1'='1"
	run 1 vc show "config.json\""
	run 2 vc show ../etc/passwd
	run 2 vc log a//b
}

t_fsck() {
	make_store
	run 0 vc fsck
	has ok
	run 0 vc fsck --json
	py 'assert d["ok"] is True and d["problems"] == []'
}

# A blob changed behind the store's back, through a raw sqlite connection
# with the immutability triggers dropped.
t_fsck_corrupt() {
	make_store
	python3 - "$work/s.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
    db.execute(f'DROP TRIGGER "{name}"')
(blob,) = db.execute("SELECT blob_id FROM versions WHERE path_id ="
                     " (SELECT id FROM paths WHERE path = 'notes.txt')").fetchone()
db.execute("UPDATE blobs SET data = ? WHERE id = ?", (b"HELLO\n", blob))
db.commit()
PY
	run 1 vc fsck
	has "SHA-256"
	has "trigger"
	run 1 vc fsck --json
	py '
assert d["ok"] is False
assert any("SHA-256" in p for p in d["problems"]) and any("trigger" in p for p in d["problems"])'
}

t_export_import() {
	make_store
	run 0 vc export --at "$SEQ_BEFORE_DEPLOY" "$work/x"
	has "to $work/x"
	vc show "$CFG1" | cmp - "$work/x/config.json" || fail "exported config.json"
	vc show "$BIN1" | cmp - "$work/x/blob.bin" || fail "exported blob.bin"
	[ "$(readlink "$work/x/current.json")" = config.json ] || fail "symlink"
	[ "$(stat -c %a "$work/x/conf.d")" = 755 ] || fail "dir mode"
	[ "$(stat -c %a "$work/x/config.json")" = 644 ] || fail "file mode"
	[ -f "$work/x/notes.txt" ] && [ ! -e "$work/x/readme.txt" ] || fail "tree at SEQ"
	[ -f "$work/x/line"$'\n'"break.txt" ] || fail "newline path"
	chmod 0600 "$work/x/notes.txt"
	# Not over an existing tree.
	run 2 vc export "$work/x"
	has "not empty" err
	run 0 vc export "$work/y" --json
	py 'assert d["seq"] == int(E["SEQ_LAST"]) and d["files"] == 6 and d["symlinks"] == 1 and d["directories"] == 1'
	# Import into a new store, then again: nothing new.
	run 0 "$VERCONF" --store "$work/new.db" import "$work/x" --json
	py 'assert d["created"] == 8 and d["unchanged"] == 0, d'
	run 0 "$VERCONF" --store "$work/new.db" import "$work/x" --json
	py 'assert d["created"] == 0 and d["unchanged"] == 8, d'
	run 0 "$VERCONF" --store "$work/new.db" show notes.txt
	[ "$(cat "$work/out")" = hello ] || fail "imported content"
	run 0 "$VERCONF" --store "$work/new.db" log notes.txt --json
	py 'v = d["versions"][0]; assert v["op"] == "import" and v["mode"] == "0600"'
	run 0 "$VERCONF" --store "$work/new.db" tree --json
	py '
p = {x["path"]: x for x in d["entries"]}
assert p["current.json"]["target"] == "config.json" and p["conf.d"]["kind"] == "dir"
assert "line\nbreak.txt" in p'
	run 2 "$VERCONF" --store "$work/new.db" import "$work/nothing-here"
	run 2 "$VERCONF" -C "$work" import "$work/x"
	# A store that a writer holds (as verconfd does) is refused.
	mkfifo "$work/hold"
	"$FIXTURE" hold "$work/new.db" <"$work/hold" >"$work/held" &
	local holder=$!
	exec 3>"$work/hold"
	for _ in $(seq 100); do grep -q ready "$work/held" && break; sleep 0.1; done
	run 3 "$VERCONF" --store "$work/new.db" import "$work/x"
	has "served by a daemon" err
	# Reading stays possible meanwhile.
	run 0 "$VERCONF" --store "$work/new.db" status
	exec 3>&-
	wait "$holder"
}

t_control_errors() {
	make_store
	run 2 vc activate
	run 2 vc activate notanid
	run 3 vc activate "$CFG2"
	has "no verconfd mount" err
	run 3 vc rollback config.json
	run 3 vc restore --at "$SEQ_BEFORE_DEPLOY"
	run 2 vc restore
	run 2 vc rollback config.json --to 3 --at 2h
	mkdir "$work/plain"
	run 3 "$VERCONF" -C "$work/plain" activate "$CFG2"
	has "not a verconfd mount" err
}

# ---- scenarios on a mount ---------------------------------------------

mount_store() {
	[ -n "$VERCONFD" ] && [ -x "$VERCONFD" ] || { echo "no verconfd: skipped"; exit 77; }
	[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || { echo "no FUSE: skipped"; exit 77; }
	mkdir -p "$mnt"
	"$VERCONFD" "$work/s.db" "$mnt" -f "$@" >"$work/daemon.log" 2>&1 &
	daemon_pid=$!
	for _ in $(seq 100); do
		[ -r "$mnt/.control" ] && break
		kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "verconfd died"; }
		sleep 0.1
	done
	[ -r "$mnt/.control" ] || fail "mount did not come up in 10 s"
}

t_mount_activate() {
	make_store
	mount_store
	run 0 "$VERCONF" -C "$mnt" activate "$CFG2"
	has "config.json: version $CFG2 is live"
	grep -q '"port": 5433' "$mnt/config.json" || fail "mount does not show CFG2"
	run 0 "$VERCONF" -C "$mnt" status --json
	py 'assert {x["path"]: x["id"] for x in d["paths"]}["config.json"] == int(E["CFG2"])'
	# Found through /proc/self/mountinfo, without -C.
	run 0 vc activate "$CFG1"
	grep -q '"port": 5432' "$mnt/config.json" || fail "activate without -C"
	# Error paths: unknown id, rejected id.
	run 1 "$VERCONF" -C "$mnt" activate 99999
	has "no version 99999" err
	run 1 "$VERCONF" -C "$mnt" activate "$REJ1"
	has "rejected" err
	# Paths under the mount, absolute.
	run 0 "$VERCONF" -C "$mnt" log "$mnt/config.json" --json
	py 'assert {x["path"] for x in d["versions"]} == {"config.json"}'
}

t_mount_rollback() {
	make_store
	mount_store
	run 1 "$VERCONF" -C "$mnt" rollback config.json --to "$DB1"
	has "is of conf.d/10-db.json" err
	run 0 "$VERCONF" -C "$mnt" rollback config.json --to "$CFG2"
	has "config.json: version $CFG2 is live"
	grep -q '"port": 5433' "$mnt/config.json" || fail "rollback --to"
	run 0 "$VERCONF" -C "$mnt" rollback config.json
	has "config.json: version $CFG1 is live"
	grep -q '"port": 5432' "$mnt/config.json" || fail "rollback"
	run 1 "$VERCONF" -C "$mnt" rollback config.json --to 99999
	has "no version 99999" err
	run 0 "$VERCONF" -C "$mnt" rollback config.json --at "$T_BEFORE_RESTORE"
	grep -q '"port": 5433' "$mnt/config.json" || fail "rollback --at"
	run 1 "$VERCONF" -C "$mnt" rollback readme.txt --at "$SEQ_BEFORE_DEPLOY"
	has "did not exist" err
	run 0 "$VERCONF" -C "$mnt" restore --at "$T_BEFORE_RESTORE"
	[ -f "$mnt/readme.txt" ] && [ ! -e "$mnt/notes.txt" ] || fail "restore --at TIME"
	run 0 "$VERCONF" -C "$mnt" restore --at "$SEQ_BEFORE_DEPLOY"
	[ -f "$mnt/notes.txt" ] && [ ! -e "$mnt/readme.txt" ] || fail "restore --at SEQ"
	run 1 "$VERCONF" -C "$mnt" restore --at 99999
}

# A store written by a real verconfd session: two uids (root and nobody,
# through allow_other), a rejected JSON, a rename, a delete and its
# restore, a multi-file restore; then every read command on it, served.
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }

# nobody_write FILE TEXT: write through the mount as nobody; prints the
# errno name close(2) failed with, or "ok".
nobody_write() {
	as_nobody /usr/bin/python3 -c '
import os, sys, errno
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, sys.argv[2].encode())
try:
    os.close(fd); print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$1" "$2"
}

session_history() {
	printf '{"database": {"host": "db", "port": 5432}, "feature_flags": {}}\n' >"$mnt/config.json"
	printf 'v1\n' >"$mnt/notes.txt"
	chmod 666 "$mnt/config.json"
	sleep 1.1
	T1=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	sleep 1.1
	[ "$(nobody_write "$mnt/config.json" '{"database": {"host": "db", "port": 5433},
 "feature_flags": {"new_api": true}}')" = ok ] || fail "nobody's write"
	[ "$(nobody_write "$mnt/config.json" '{"database": ')" = EINVAL ] || fail "broken JSON accepted"
	mv "$mnt/notes.txt" "$mnt/readme.txt"
	rm "$mnt/readme.txt"
}

t_mount_session() {
	id nobody >/dev/null 2>&1 || { echo "no user nobody: skipped"; exit 77; }
	chmod 755 "$work"
	mount_store -o allow_other
	session_history
	local V=("$VERCONF" -C "$mnt")
	run 0 "${V[@]}" log config.json --json
	py '
v = d["versions"]
assert {x["actor"]["uid"] for x in v} == {0, 65534}, v
rej = [x for x in v if x["status"] == "rejected"]
assert len(rej) == 1 and "JSON" in rej[0]["reason"] and rej[0]["actor"]["comm"] == "python3"
assert v[1]["live"] and v[1]["actor"]["user"] == "nobody"'
	local old new rejected
	old=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["versions"][2]["id"])' "$work/out")
	new=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["versions"][1]["id"])' "$work/out")
	rejected=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["versions"][0]["id"])' "$work/out")
	run 0 "${V[@]}" log config.json
	row "$new" | grep -q " nobody(65534) [0-9]* python3 .* config.json live$" || fail "nobody's row: $(row "$new")"
	row "$rejected" | grep -q " config.json rejected: .*JSON" || fail "rejected row: $(row "$rejected")"
	run 1 "${V[@]}" diff --keys "$old"
	[ "$(cat "$work/out")" = '.database.port: 5432 -> 5433
+.feature_flags.new_api: true' ] || fail "keys: $(cat "$work/out")"
	run 1 "${V[@]}" diff "$old" "$mnt/config.json"
	has '+++ config.json@'"$new"
	# The deleted file back, through .control.
	run 0 "${V[@]}" log --all readme.txt --json
	local readme
	readme=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["versions"][0]["id"])' "$work/out")
	run 0 "${V[@]}" activate "$readme"
	[ "$(cat "$mnt/readme.txt")" = v1 ] || fail "restored readme.txt"
	# The whole tree back to T1: two paths move at once.
	run 0 "${V[@]}" restore --at "$T1"
	[ ! -e "$mnt/readme.txt" ] && [ -e "$mnt/notes.txt" ] || fail "multi-file restore"
	grep -q '"port": 5432' "$mnt/config.json" || fail "config.json after restore"
	run 0 "${V[@]}" journal --json
	py '
acts = [x["action"] for x in d["entries"]]
assert {"commit", "rename", "delete", "activate", "restore"} <= set(acts), acts
assert acts[:3].count("restore") >= 2, acts'
	run 0 "${V[@]}" status
	row config.json | grep -q " restore root(0) " || fail "status: $(row config.json)"
	run 0 "${V[@]}" tree --at "$T1" --json
	py 'assert sorted(x["path"] for x in d["entries"]) == ["", "config.json", "notes.txt"]'
	run 0 "${V[@]}" show config.json --at "@$(vc journal -n 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"][0]["seq"])')"
	grep -q '"port": 5432' "$work/out" || fail "show --at"
	run 0 "${V[@]}" fsck
	run 0 "${V[@]}" export "$work/x"
	cmp "$work/x/config.json" "$mnt/config.json" || fail "export of a served store"
	# Without -C: the store named, its mount found in /proc/self/mountinfo.
	run 0 vc log "$mnt/notes.txt" --json
	py 'assert {x["path"] for x in d["versions"]} == {"notes.txt"}'
	run 0 vc rollback config.json
	grep -q '"port": 5433' "$mnt/config.json" || fail "rollback without -C"
	run 3 vc import "$work/x"
	has "served by a daemon" err
}

# Names that are not UTF-8 (a Latin-1 file name): --json stays valid UTF-8
# (strictly decoded here), shows U+FFFD and gives the exact bytes in base64.
t_json_bytes() {
	local name
	name=$(printf 'caf\351.conf')
	mkdir "$work/src"
	printf '{"a": 1}\n' >"$work/src/$name"
	ln -s "$name" "$work/src/link"
	run 0 vc import "$work/src"
	printf '{"a": 2}\n' >"$work/src/$name"
	run 0 vc import "$work/src"
	# need: whether the output must name the file (fsck and show do not).
	for cmd in "1 log" "1 tree" "1 status" "1 journal" "1 log $name" "1 diff $name" \
		   "0 show $name" "0 fsck"; do
		# shellcheck disable=SC2086
		run 0 vc ${cmd#* } --json
		python3 -c "import base64, json, sys
raw = open('$work/out', 'rb').read()
d = json.loads(raw.decode('utf-8'))   # strict: no stray bytes
want = b'caf\\xe9.conf'
def walk(x):
    if isinstance(x, dict):
        for k, v in x.items():
            if k.endswith('_base64'):
                yield k[:-7], x[k[:-7]], base64.b64decode(v)
            yield from walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from walk(v)
pairs = list(walk(d))
for key, shown, exact in pairs:
    assert exact == want, (key, exact)
    assert shown == 'caf\\ufffd.conf', (key, shown)
if sys.argv[1] == '1':
    assert pairs, 'no _base64 field'
" "${cmd%% *}" || fail "${cmd#* } --json: not valid UTF-8 or bytes lost"
	done
	run 0 vc show "$name"
	has '{"a": 2}'
	# Keys and values of the configs themselves (diff --keys) are bytes
	# too; the JSON gate accepts stray bytes inside strings.
	printf '{"v": "\377", "k": {"\300\257": 1}}\n' >"$work/src/$name"
	run 0 vc import "$work/src"
	local first
	first=$(vc log "$name" --json | python3 -c 'import json, sys
print(min(v["id"] for v in json.loads(sys.stdin.buffer.read().decode())["versions"]))')
	run 1 vc diff --keys --json "$name" "$first"
	python3 -c "import json
d = json.loads(open('$work/out', 'rb').read().decode('utf-8'))
s = json.dumps(d, ensure_ascii=False)
assert '\ufffd' in s, s" || fail "diff --keys --json: not valid UTF-8"
}

fn=t_${scenario//-/_}
declare -F "$fn" >/dev/null || { echo "unknown scenario $scenario" >&2; exit 2; }
"$fn"
echo "ok: $scenario"
