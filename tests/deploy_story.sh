#!/usr/bin/env bash
# The deployment story from the issue, run twice with the same commands:
#   1. on a plain temporary directory (real hard links): the edit of v2 lands
#      in config.v1.json and the rollback brings back the wrong bytes.  The
#      test FAILS if that corruption does not happen, so it can fail.
#   2. on a verconf mount: link is a copy-on-write clone, the broken v2 is
#      rejected but kept in history, and config.v1.json still holds v1.
. "$(dirname "$0")/lib.sh"

V1='{"name": "app", "version": 1}'
V2_BROKEN='{"name": "app" "version": 2}' # missing comma
V2='{"name": "app", "version": 2}'
STAGE=$T/staging
mkdir -p "$STAGE"
printf '%s\n' "$V1" >"$STAGE/v1.json"
printf '%s\n' "$V2_BROKEN" >"$STAGE/v2-broken.json"

# R[STEP.rc|out|live|v1|v2|ino]: what each step did, for the assertions below.
declare -A R
STEPS=()

# step DIR NAME COMMAND...: run COMMAND in DIR (never aborting), then snapshot.
step() {
	local d=$1 name=$2; shift 2
	local rc=0 out
	out=$(cd "$d" && "$@" 2>&1) || rc=$?
	STEPS+=("$name")
	R[$name.rc]=$rc
	R[$name.out]=$out
	R[$name.live]=$(cat "$d/config.json" 2>/dev/null || echo '<missing>')
	R[$name.v1]=$(cat "$d/config.v1.json" 2>/dev/null || echo '<missing>')
	R[$name.v2]=$(cat "$d/config.v2.json" 2>/dev/null || echo '<missing>')
	R[$name.ino]=$(cd "$d" && for f in config.v1.json config.v2.json config.json; do
		stat -c %i "$f" 2>/dev/null || echo -; done | paste -sd' ')
	printf '    [exit %s] %s\n' "$rc" "${out:-}"
	printf '    config.json=%s  config.v1.json=%s  inodes(v1 v2 live)=%s\n' \
		"${R[$name.live]}" "${R[$name.v1]}" "${R[$name.ino]}"
}

# Edit a file in place, the way an editor that keeps the inode saves it.
edit_in_place() { # FILE FROM TO
	py "
import sys
f = open(sys.argv[1], 'r+')
s = f.read().replace(sys.argv[2], sys.argv[3])
f.seek(0); f.truncate(); f.write(s)
f.close()" "$@"
}

# The story, once, on directory $1.
story() {
	local d=$1
	echo "==> release v1: cp v1.json config.v1.json"
	step "$d" v1 cp "$STAGE/v1.json" config.v1.json
	echo "==> deploy v1: ln config.v1.json config.json"
	step "$d" deploy1 ln config.v1.json config.json
	echo "==> release v2, broken (missing comma): cp v2-broken.json config.v2.json"
	step "$d" broken cp "$STAGE/v2-broken.json" config.v2.json
	echo "==> deploy v2: ln -f config.v2.json config.json"
	step "$d" deploy2 ln -f config.v2.json config.json
	echo "==> fix v2 the habitual way: start from v1 (ln -f config.v1.json config.v2.json) ..."
	step "$d" restart ln -f config.v1.json config.v2.json
	echo "==> ... and edit config.v2.json in place (version 1 -> 2)"
	step "$d" fix edit_in_place config.v2.json '"version": 1' '"version": 2'
	echo "==> deploy fixed v2: ln -f config.v2.json config.json"
	step "$d" deploy3 ln -f config.v2.json config.json
	echo "==> roll back: ln -f config.v1.json config.json"
	step "$d" rollback ln -f config.v1.json config.json
	echo "==> deploy v2 again: ln -f config.v2.json config.json"
	step "$d" deploy4 ln -f config.v2.json config.json
	if [ -e "$d/.control" ]; then
		local id vid=
		for id in $(ls "$d/.versions/config.json" | sort -n); do
			[ "$(cat "$d/.versions/config.json/$id")" == "$V1" ] && { vid=$id; break; }
		done
		[ -n "$vid" ] || fail "no version of config.json holds v1: $(ls "$d/.versions/config.json")"
		echo "==> roll back by id: echo $vid > .control (config.json's v1 version)"
		step "$d" rollback_id sh -c "echo $vid > .control"
	else
		echo "==> (no .control here: rollback by id skipped)"
	fi
}

expect_step() { # STEP FIELD EXPECTED
	expect_eq "${R[$1.$2]}" "$3" "after step '$1', $2"
}
ino() { # STEP N: inode number of name N (1 v1, 2 v2, 3 config.json) after STEP
	echo "${R[$1.ino]}" | cut -d' ' -f"$2"
}

# ---- 1. plain directory: real hard links corrupt v1 ------------------------
PLAIN=$T/plain
mkdir -p "$PLAIN"
echo "# plain directory $PLAIN ($(stat -f -c %T "$PLAIN"))"
story "$PLAIN"
for s in "${STEPS[@]}"; do
	[ "$s" == rollback ] || expect_step "$s" rc 0
done
[ "$(ino deploy1 1)" == "$(ino deploy1 3)" ] || fail "plain: ln made no hard link (${R[deploy1.ino]})"
expect_step deploy2 live "$V2_BROKEN" # plain: the broken release went live
expect_step fix v1 "$V2"              # the edit of v2 landed in config.v1.json
[ "${R[rollback.live]}" != "$V1" ] || fail "plain: the rollback restored v1, so the corruption did not happen"
[ "$(cat "$PLAIN/config.v1.json")" != "$V1" ] || fail "plain: config.v1.json still holds v1"
ok "plain directory: editing config.v2.json changed config.v1.json; the rollback restores v2 bytes"

# ---- 2. verconf mount: v1 survives -----------------------------------------
R=()
STEPS=()
mount_fs
echo "# verconf mount $MNT"
story "$MNT"
expect_eq "${STEPS[*]}" "v1 deploy1 broken deploy2 restart fix deploy3 rollback deploy4 rollback_id" "steps run"

expect_step v1 rc 0
expect_step deploy1 rc 0
expect_step deploy1 live "$V1"
[ "$(ino deploy1 1)" != "$(ino deploy1 3)" ] || fail "verconf: config.json shares config.v1.json's inode"

expect_step broken rc 1
case "${R[broken.out]}" in *"Invalid argument"*) ;; *) fail "cp of broken JSON: ${R[broken.out]}" ;; esac
expect_step broken v2 '<missing>' # rejected on create: no live version
expect_step broken live "$V1"
rej=$(ls "$MNT/.versions/config.v2.json" | sort -n | head -1)
expect_eq "$(cat "$MNT/.versions/config.v2.json/$rej")" "$V2_BROKEN" "the rejected bytes are kept in history"
grep -q "^last-rejection: config.v2.json version $rej: invalid JSON" "$MNT/.control" ||
	fail ".control does not name the rejection: $(grep last-rejection "$MNT/.control")"

# ln of a path with no live version: ENOENT, config.json untouched.
expect_step deploy2 rc 1
case "${R[deploy2.out]}" in *"No such file or directory"*) ;; *) fail "ln -f of rejected v2: ${R[deploy2.out]}" ;; esac
expect_step deploy2 live "$V1"

expect_step restart rc 0
expect_step restart v2 "$V1"
expect_step fix rc 0
expect_step fix v2 "$V2"
expect_step fix v1 "$V1" # the clone's edit never reaches v1
expect_step fix live "$V1"
expect_step deploy3 rc 0
expect_step deploy3 live "$V2"
expect_step rollback rc 0
expect_step rollback live "$V1"
expect_step deploy4 rc 0
expect_step deploy4 live "$V2"
expect_step rollback_id rc 0
expect_step rollback_id live "$V1"
for s in "${STEPS[@]}"; do expect_step "$s" v1 "$V1"; done

# The end state: three names, three inodes, v1 exactly as released.
expect_eq "$(cat "$MNT/config.v1.json")" "$V1" "config.v1.json at the end"
expect_eq "$(cmp "$STAGE/v1.json" "$MNT/config.v1.json" && echo same)" same "config.v1.json byte for byte"
expect_eq "$(cat "$MNT/config.v2.json")" "$V2" "config.v2.json at the end"
expect_eq "$(cat "$MNT/config.json")" "$V1" "config.json at the end"
expect_eq "$(stat -c %i "$MNT"/config{.v1,.v2,}.json | sort -u | wc -l)" 3 "distinct inode numbers"
expect_eq "$(stat -c %h "$MNT"/config{.v1,.v2,}.json | paste -sd' ')" "1 1 1" "st_nlink"
expect_eq "$(ls "$MNT/.versions/config.v1.json" | wc -l)" 1 "config.v1.json was never changed"
# History of config.v2.json: rejected, clone of v1, the fix.
expect_eq "$(ls "$MNT/.versions/config.v2.json" | wc -l)" 3 "versions of config.v2.json"
expect_eq "$(ls "$MNT/.versions/config.v2.json" | sort -n | head -1)" "$rej" "the rejected version is still first"
ok "verconf: v1 survives the edit of v2, rejected v2 kept, rollbacks by ln and by id"

umount_fs
# Attribution: every version of the two releases, and every move of
# config.json, is recorded with the process that made it.
sqlite3 "$STORE" "select v.op, v.status, v.actor_uid, v.actor_comm from versions v
                  join paths p on p.id=v.path_id where p.path='config.v2.json' order by v.id" >"$T/who"
expect_eq "$(paste -sd' ' "$T/who")" "create|rejected|0|cp link|accepted|0|ln write|accepted|0|python3" \
	"who made each version of config.v2.json"
sqlite3 "$STORE" "select j.action, j.actor_comm from journal j
                  join paths p on p.id=j.path_id where p.path='config.json' order by j.seq" >"$T/who"
expect_eq "$(paste -sd' ' "$T/who")" "commit|ln rename|ln rename|ln rename|ln activate|sh" \
	"who moved config.json"
expect_eq "$(sqlite3 "$STORE" "select count(*) from versions v join paths p on p.id=v.path_id
                              where p.path='config.v1.json'")" 1 "config.v1.json has one version"
ok "attribution"
