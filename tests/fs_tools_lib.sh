# Helpers shared by tests/fs_tools*.sh (sourced after lib.sh; not a test).
# Every case runs the same tool the same way in a plain directory ($PLAIN/S)
# and on the mount ($MNT/S), then compares what a user checks afterwards:
# the names left in the directory, each file's bytes, `stat -c '%a %u %g %s'`
# (plus mtime where the tool preserves times).  The plain directory is the
# oracle for "the right result".  History is then checked on the mount.
# A failed check is counted, not fatal, so one bug does not hide the others;
# finish() fails the test if any check failed.

VERCONF=${VERCONF:?VERCONF must name the verconf binary}
PLAIN=$T/plain
mkdir -p "$PLAIN"
FAILS=0

CASE_FAILS=0
bad() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
# ok_if WHAT: "ok" if no check failed since the previous ok_if.
ok_if() {
	if [ "$FAILS" -eq "$CASE_FAILS" ]; then ok "$1"; else echo "not ok - $1"; fi
	CASE_FAILS=$FAILS
}
want() { [ "$1" == "$2" ] || bad "$3: expected '$2', got '$1'"; }

finish() {
	cd /
	grep -i 'error\|abort\|assert' "$LOG" >&2 || true
	[ "$FAILS" -eq 0 ] || fail "$FAILS check(s) failed (FAIL lines above)"
	umount_fs
	sqlite3 "$STORE" "pragma integrity_check" | grep -qx ok || fail "store integrity_check"
	echo "all checks passed"
}

sha() { sha256sum <"$1" | cut -c1-12; }

# snap [-t] DIR: one line per name in DIR (recursively, hidden names too):
# name, type, bytes hash, mode, uid, gid, size [, mtime] (.git left out:
# its index holds inode numbers).  Directories: no
# hash and no size (st_size of a directory differs between filesystems).
snap() {
	local t=
	[ "$1" = -t ] && { t=1; shift; }
	(cd "$1" && find . -mindepth 1 -name .git -prune -o -print | LC_ALL=C sort | while read -r f; do
		if [ -L "$f" ]; then
			printf '%s link %s' "$f" "$(readlink "$f")"
		elif [ -d "$f" ]; then
			printf '%s dir %s' "$f" "$(stat -c '%a %u %g' "$f")"
		else
			printf '%s file %s %s' "$f" "$(sha "$f")" "$(stat -c '%a %u %g %s' "$f")"
			[ -n "$t" ] && printf ' mtime=%s' "$(stat -c %Y "$f")"
		fi
		echo
	done)
}

# same_as_plain [-t] S WHAT: the mount's $MNT/S looks exactly like $PLAIN/S.
same_as_plain() {
	local t=
	[ "$1" = -t ] && { t=-t; shift; }
	local a b
	a=$(snap $t "$PLAIN/$1")
	b=$(snap $t "$MNT/$1")
	[ "$a" == "$b" ] || bad "$2: mount differs from a plain directory:
$(diff <(echo "$a") <(echo "$b") | sed 's/^/    /')"
}

# hist PATH: the history of PATH (relative to the mount), oldest first:
# id op status mode uid gid size sha256-prefix
hist() {
	"$VERCONF" --store "$STORE" log "$1" --json 2>/dev/null | python3 -c '
import json, sys
for v in reversed(json.load(sys.stdin)["versions"]):
    print(v["id"], v["op"], v["status"], v["mode"], v["uid"], v["gid"], v["size"], v["sha256"][:12])'
}

# check_hist WHAT PATH BEFORE COUNT ALLOWED_SHAS: compare PATH's history with
# BEFORE (hist output taken earlier): the old versions are unchanged, COUNT new
# versions were added ("N", or "N+" for at least N), each holds bytes from
# ALLOWED_SHAS (space separated: no torn, empty or junk version) with no mode
# bit that neither the old nor the final mode had, and the newest one is what `cat` and `stat`
# show now.
check_hist() {
	local what=$1 path=$2 before=$3 count=$4 allowed=$5 after
	after=$(hist "$path")
	local live_sha live_mode
	live_sha=$(sha "$MNT/$path")
	live_mode=$(stat -c '%04a %u %g %s' "$MNT/$path")
	local out
	out=$(python3 - "$count" "$allowed" "$live_sha" "$live_mode" 3<<<"$before" 4<<<"$after" <<'EOF'
import sys
count, allowed, live_sha, live_mode = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
before = [l.split() for l in open(3).read().splitlines() if l.strip()]
after = [l.split() for l in open(4).read().splitlines() if l.strip()]
errs = []
if after[:len(before)] != before:
    errs.append("old versions changed: before %s, after %s" % (before, after[:len(before)]))
new = after[len(before):]
n = len(new)
if count.endswith("+"):
    if n < int(count[:-1]):
        errs.append("expected at least %s new versions, got %d" % (count[:-1], n))
elif n != int(count):
    errs.append("expected %s new version(s), got %d" % (count, n))
# A version may carry the old mode (a rewrite in place before its chmod) or
# the final one, never bits that neither had.
final_mode = int(live_mode.split()[0], 8)
ok_bits = final_mode | (int(before[-1][3], 8) if before else 0)
for v in new:
    if v[7] not in allowed:
        errs.append("version %s (%s) holds bytes %s, neither old nor new %s" % (v[0], v[1], v[7], allowed))
    if int(v[3], 8) & ~ok_bits & 0o777:
        errs.append("version %s (%s) mode %s has bits neither the old nor the final mode (%o) had" % (v[0], v[1], v[3], ok_bits))
if new:
    last = new[-1]
    if last[7] != live_sha or " ".join(last[3:7]) != live_mode:
        errs.append("newest version %s is not what is live (%s %s)" % (last, live_sha, live_mode))
print("; ".join(errs))
EOF
)
	[ -z "$out" ] || bad "$what: history of $path: $out
    before: $(echo "$before" | tr '\n' '|')
    after:  $(echo "$after" | tr '\n' '|')"
}

# live_paths: every live path that `verconf log` lists (deleted ones left out).
live_paths() {
	"$VERCONF" --store "$STORE" log --json | python3 -c '
import json, sys
for p in sorted({v["path"] for v in json.load(sys.stdin)["versions"]}): print(p)'
}

# in_both S CMD...: run CMD in $PLAIN/S and in $MNT/S (created first).
# Prints nothing; the exit status of the mount run is in $RC_MNT, of the
# plain run in $RC_PLAIN.
in_both() {
	local s=$1; shift
	mkdir -p "$PLAIN/$s" "$MNT/$s"
	RC_PLAIN=0; (cd "$PLAIN/$s" && "$@") || RC_PLAIN=$?
	RC_MNT=0; (cd "$MNT/$s" && "$@") || RC_MNT=$?
	[ "$RC_PLAIN" == "$RC_MNT" ] || bad "$s: '$*' exited $RC_PLAIN on a plain directory, $RC_MNT on the mount"
}
