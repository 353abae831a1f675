#!/usr/bin/env bash
# How tools replace config files: temp file + rename (sed -i, perl -pi,
# Python tempfile + os.replace, rsync), install, cp, cp -a, mv, tar x, git.
# Each runs on a plain directory and on the mount; the mount must end up
# identical: names, bytes, mode, owner, and the mtime where the tool keeps
# times (cp -a, cp -p, rsync -a, tar x, mv).  History: the target keeps its
# old versions unchanged and gains versions that hold only the new bytes
# (or, for a chmod/chown step, the old bytes) with no wider mode than the
# final one; temp files are never live and `verconf log` does not list them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs_tools_lib.sh"
for c in rsync git tar perl install; do command -v $c >/dev/null || fail "$c missing (tools/bootstrap.sh)"; done
mount_fs

OLD=2020-01-02T03:04:05Z
sha_of() { printf '%s' "$1" | sha256sum | cut -c1-12; }
setup() { printf 'a=1\nb=2\n' >app.conf && chown 5:6 app.conf && chmod 640 app.conf && touch -d $OLD app.conf; }
orig_sha=$(sha_of $'a=1\nb=2\n')
new_sha=$(sha_of $'a=9\nb=2\n')
no_temp_left() { # S WHAT: only the expected names are live, and verconf log agrees
	local extra
	extra=$(live_paths | grep "^$1/" | grep -vxF -e "$1/app.conf" -e "$1/new.conf" || true)
	[ -z "$extra" ] || bad "$2: verconf log lists more than the config: $extra"
}

# --- in-place rewriters: temp file + rename ---------------------------------
rewrite() { # S WHAT CMD...
	local s=$1 what=$2 before; shift 2
	in_both $s setup
	before=$(hist $s/app.conf)
	in_both $s "$@"
	[ "$RC_MNT" -eq 0 ] || bad "$what: failed on the mount (exit $RC_MNT)"
	same_as_plain $s "$what"
	want "$(cat "$MNT/$s/app.conf")" $'a=9\nb=2' "$what: cat"
	want "$(stat -c '%a %u %g %s' "$MNT/$s/app.conf")" "640 5 6 8" "$what: stat"
	check_hist "$what" $s/app.conf "$before" 1 "$new_sha"
	no_temp_left $s "$what"
	ok_if "$what"
}
rewrite sed "sed -i" sed -i 's/a=1/a=9/' app.conf
rewrite perl "perl -pi -e" perl -pi -e 's/a=1/a=9/' app.conf
py_replace() {
	python3 - <<'EOF'
import os, tempfile
st = os.stat("app.conf")
data = open("app.conf", "rb").read().replace(b"a=1", b"a=9")
with tempfile.NamedTemporaryFile(dir=".", prefix=".app.conf.", delete=False) as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
    os.fchmod(f.fileno(), st.st_mode & 0o7777)
    os.fchown(f.fileno(), st.st_uid, st.st_gid)
os.replace(f.name, "app.conf")
EOF
}
rewrite python "python tempfile + os.replace" py_replace

# --- install ------------------------------------------------------------------
printf 'i=1\n' >"$T/src.conf"
s=install
mkdir -p "$PLAIN/$s" "$MNT/$s"
in_both $s install -m 0640 "$T/src.conf" new.conf
same_as_plain $s "install -m 0640 (new file)"
check_hist "install -m 0640 (new file)" $s/new.conf "" 1+ "$(sha_of $'i=1\n')"
want "$(stat -c '%a %u %g %s' "$MNT/$s/new.conf")" "640 0 0 4" "install -m 0640: stat"
ok_if "install -m 0640 src dst (new)"
in_both $s setup
before=$(hist $s/app.conf)
in_both $s install -m 0600 -o 7 -g 8 "$T/src.conf" app.conf
same_as_plain $s "install -m 0600 -o 7 -g 8 (over a file)"
want "$(stat -c '%a %u %g %s' "$MNT/$s/app.conf")" "600 7 8 4" "install over: stat"
check_hist "install over" $s/app.conf "$before" 1+ "$(sha_of $'i=1\n') $orig_sha"
no_temp_left $s "install"
ok_if "install -m 0600 -o 7 -g 8 src dst (over a file)"

# --- rsync ----------------------------------------------------------------------
printf 'a=9\nb=2\n' >"$T/src.conf"
chown 3:4 "$T/src.conf"; chmod 604 "$T/src.conf"; touch -d $OLD "$T/src.conf"
rs() { # S WHAT TIMES OPTIONS...: rsync src over an existing app.conf
	local s=$1 what=$2 t=$3 before; shift 3
	in_both $s setup
	in_both $s touch -d 2021-06-07T00:00:00Z app.conf
	before=$(hist $s/app.conf)
	in_both $s rsync "$@" "$T/src.conf" app.conf
	[ "$RC_MNT" -eq 0 ] || bad "$what: failed on the mount (exit $RC_MNT)"
	same_as_plain $t $s "$what"
	check_hist "$what" $s/app.conf "$before" 1+ "$new_sha $orig_sha"
	no_temp_left $s "$what"
	ok_if "$what"
}
rs rsync "rsync (temp file + rename)" ""
rs rsync_a "rsync -a (times, mode, owner kept)" -t -a
rs rsync_inplace "rsync --inplace" "" --inplace
rs rsync_a_inplace "rsync -a --inplace" -t -a --inplace

# --- cp -------------------------------------------------------------------------
s=cp
in_both $s setup
before=$(hist $s/app.conf)
in_both $s cp "$T/src.conf" app.conf
same_as_plain $s "cp over a file"
want "$(stat -c '%a %u %g %s' "$MNT/$s/app.conf")" "640 5 6 8" "cp over a file keeps the target's mode and owner"
check_hist "cp over a file" $s/app.conf "$before" 1 "$new_sha"
ok_if "cp src dst (over a file)"
for flags in -a --preserve=all -p; do
	s=cp$flags
	in_both $s cp $flags "$T/src.conf" new.conf
	same_as_plain -t $s "cp $flags (new file)"
	want "$(stat -c '%a %u %g %Y' "$MNT/$s/new.conf")" "604 3 4 $(date -d $OLD +%s)" "cp $flags: mode, owner, mtime kept"
	in_both $s setup
	before=$(hist $s/app.conf)
	in_both $s cp $flags "$T/src.conf" app.conf
	same_as_plain -t $s "cp $flags (over a file)"
	check_hist "cp $flags (over a file)" $s/app.conf "$before" 1+ "$new_sha $orig_sha"
	ok_if "cp $flags"
done

# --- mv -------------------------------------------------------------------------
s=mv
in_both $s setup
before=$(hist $s/app.conf)
mvin() { printf 'a=9\nb=2\n' >.app.conf.new && chown 5:6 .app.conf.new && chmod 640 .app.conf.new && touch -d $OLD .app.conf.new && mv .app.conf.new app.conf; }
in_both $s mvin
same_as_plain -t $s "mv within the mount"
check_hist "mv within the mount" $s/app.conf "$before" 1 "$new_sha"
no_temp_left $s "mv within"
ok_if "mv tmp app.conf (within the mount)"
mkdir -p "$T/out"
before=$(hist $s/app.conf)
mvout() { cp -a "$T/src.conf" "$T/out/x.conf" && mv "$T/out/x.conf" app.conf; }
in_both $s mvout
same_as_plain -t $s "mv into the mount from another filesystem"
want "$(stat -c '%a %u %g %s' "$MNT/$s/app.conf")" "604 3 4 8" "mv from outside: stat"
check_hist "mv from outside" $s/app.conf "$before" 1+ "$new_sha"
ok_if "mv from another filesystem into the mount"

# --- tar x ----------------------------------------------------------------------
B=$T/bundle
mkdir -p "$B/app/conf.d"
printf 'main=1\n' >"$B/app/main.conf"
printf 'secret=1\n' >"$B/app/conf.d/10-secret.conf"
printf '{"k": 1}\n' >"$B/app/conf.d/20.json"
ln -s conf.d/20.json "$B/app/current.json"
chmod 600 "$B/app/conf.d/10-secret.conf"; chmod 750 "$B/app/conf.d"
chown -R 11:12 "$B/app"; chown -h 11:12 "$B/app/current.json"
find "$B" -exec touch -h -d $OLD {} +
tar -C "$B" -cf "$T/bundle.tar" app
s=tar
in_both $s tar -xpf "$T/bundle.tar"
same_as_plain -t $s "tar xp of a config bundle"
want "$(cat "$MNT/$s/app/current.json")" '{"k": 1}' "tar: read through the bundle's symlink"
ok_if "tar xp"
# Unpacking the same bundle again changes nothing a user can see.
n=$(nversions $s/app/main.conf)
in_both $s tar -xpf "$T/bundle.tar"
same_as_plain -t $s "tar xp again"
want "$(cat "$MNT/$s/app/main.conf")" "main=1" "tar again: cat"
echo "note: tar x over itself: main.conf $n -> $(nversions $s/app/main.conf) versions"
ok_if "tar xp over the same tree"

# --- git clone / checkout --------------------------------------------------------
G=$T/gitsrc
mkdir -p "$G"
(
	cd "$G"
	git init -q -b main && git config user.email t@example.org && git config user.name t
	printf 'g=1\n' >app.conf; printf '#!/bin/sh\necho hook\n' >hook.sh; chmod 755 hook.sh
	mkdir conf.d; printf 'x=1\n' >conf.d/x.conf
	git add . && git commit -qm one
	printf 'g=2\n' >app.conf; git rm -q conf.d/x.conf; mkdir -p conf.d; printf 'y=1\n' >conf.d/y.conf
	git add . && git commit -qm two
	git clone -q --bare . "$T/repo.git"
)
s=git
gitrun() { git -c advice.detachedHead=false "$@"; }
in_both $s git clone -q "file://$T/repo.git" repo  # file://: the pack protocol on both (a plain clone would hardlink objects)
same_as_plain $s "git clone"
want "$(git -C "$MNT/$s/repo" status --porcelain)" "" "git clone: status clean"
in_both $s/repo gitrun checkout -q HEAD~1
same_as_plain $s "git checkout HEAD~1"
want "$(cat "$MNT/$s/repo/app.conf")" "g=1" "git checkout: old app.conf"
want "$(git -C "$MNT/$s/repo" status --porcelain)" "" "git checkout: status clean"
in_both $s/repo gitrun checkout -q main
same_as_plain $s "git checkout main"
want "$(cat "$MNT/$s/repo/app.conf")" "g=2" "git checkout main: app.conf"
git -C "$MNT/$s/repo" fsck --no-progress >/dev/null 2>"$T/fsck" || bad "git fsck on the mount: $(cat "$T/fsck")"
h=$(hist $s/repo/app.conf | awk '{print $8}' | tr '\n' ' ')
want "$h" "$(sha_of $'g=2\n') $(sha_of $'g=1\n') $(sha_of $'g=2\n') " "git: app.conf history is clone, checkout, checkout"
ok_if "git clone and checkout in the mount"

finish
