#!/usr/bin/env bash
# Rule 8 and security: .versions is read-only, follows each version's own
# mode and owner, and shows no one what they could not read live.
. "$(dirname "$0")/lib.sh"
id nobody >/dev/null || fail "no user nobody"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
mount_fs -o allow_other
cd "$MNT"

printf 'public v1\n' > pub.conf
printf 'public v2\n' > pub.conf
printf 'secret\n' > secret.conf
chmod 600 secret.conf
printf 'now public\n' > secret.conf
chmod 644 secret.conf

ids=($(ls .versions/pub.conf | sort -n))
expect_eq "${#ids[@]}" 2 "two versions of pub.conf"
expect_eq "$(cat .versions/pub.conf/${ids[0]})" "public v1" "old version readable"
expect_eq "$(stat -c '%a %s' .versions/pub.conf/${ids[0]})" "444 10" "mode (write bits cleared) and size"
expect_fail "Read-only file system" bash -c "echo x > .versions/pub.conf/${ids[0]}"
expect_fail "Read-only file system" rm .versions/pub.conf/${ids[0]}
expect_fail "Read-only file system" touch .versions/newfile
expect_fail "Read-only file system" chmod 777 .versions/pub.conf/${ids[0]}
ok "read-only history with sizes and modes"

# Every version keeps its own owner and mode: the 0600 one stays private.
sids=($(ls .versions/secret.conf | sort -n))
first=${sids[0]}
expect_eq "$(stat -c %a .versions/secret.conf/$first)" "444" "first secret version was 644 when written"
priv=""
for v in "${sids[@]}"; do
	[ "$(stat -c %a .versions/secret.conf/$v)" = 400 ] && priv=$v
done
[ -n "$priv" ] || fail "no 0400 (from 0600) version in secret.conf history: $(ls -l .versions/secret.conf)"
expect_eq "$(as_nobody cat pub.conf)" "public v2" "nobody reads a public file live"
expect_eq "$(as_nobody cat .versions/pub.conf/${ids[0]})" "public v1" "nobody reads public history"
# A version written while the file was 0600 is not readable by nobody, even now that it is public.
chmod 600 secret.conf
expect_fail "Permission denied" as_nobody cat secret.conf
expect_fail "Permission denied" as_nobody cat ".versions/secret.conf/$priv"
ok "history follows each version's own permissions"

# A directory's history is searchable only by whom the directory is.
mkdir private; chmod 700 private; printf 'p\n' > private/key.conf; chmod 644 private/key.conf
expect_fail "Permission denied" as_nobody cat private/key.conf
expect_fail "Permission denied" as_nobody ls .versions/private/key.conf
# ... and stays so once the directory is opened up, or removed and made
# again open: what was written under 0700 was never readable by nobody.
kid=$(ls .versions/private/key.conf)
printf 'public now\n' > private/key.conf; chmod 755 private
mkdir -m 700 gone; printf 'hidden\n' > gone/k.conf; gid=$(ls .versions/gone/k.conf)
rm -r gone; mkdir -m 755 gone
sleep 1.2   # .versions directories' attributes are cached for a second
expect_eq "$(as_nobody cat private/key.conf)" "public now" "nobody reads the file now public"
expect_fail "Permission denied" as_nobody cat ".versions/private/key.conf/$kid"
expect_fail "Permission denied" as_nobody cat ".versions/gone/k.conf/$gid"
ok "directory permissions guard history too, after the directory is opened up"

# nobody can neither read nor write .control, and cannot learn the live tree from it.
expect_fail "Permission denied" as_nobody cat .control
expect_fail "Permission denied" as_nobody bash -c "echo ${ids[0]} > $MNT/.control"
expect_eq "$(cat pub.conf)" "public v2" "nobody's .control write changed nothing"
ok ".control is the mounting user's"

# The store file itself is private.
expect_eq "$(stat -c %a "$STORE")" "600" "store mode"
expect_fail "Permission denied" as_nobody cat "$STORE"
ok "store is 0600"

# default_permissions: the kernel checks modes for everyone else too.
printf 'mine\n' > rootonly.conf; chmod 644 rootonly.conf
expect_fail "Permission denied" as_nobody bash -c "echo x >> $MNT/rootonly.conf"
expect_fail "Permission denied" as_nobody touch "$MNT/new-by-nobody"
grep -E " $MNT fuse.verconfd " /proc/mounts | grep -q "nosuid,nodev" || fail "mount lacks nosuid,nodev: $(grep " $MNT " /proc/mounts)"
grep -E " $MNT fuse.verconfd " /proc/mounts | grep -q "default_permissions" || fail "mount lacks default_permissions"
ok "kernel permission checks, nosuid, nodev"

# Versions made at the last release (create or O_TRUNC with no write) are
# still attributed to the process that opened the file, not to pid 0.
mkdir -m 1777 pub
as_nobody touch pub/t1
as_nobody bash -c ": > $MNT/pub/t2"
for f in t1 t2; do
	# The kernel sends the last release after close(2) has returned.
	for _ in $(seq 200); do
		sqlite3 "$STORE" "select actor_uid || ':' || actor_pid from versions v join paths p on p.id = v.path_id where p.path = 'pub/$f'" > "$T/who"
		[ -s "$T/who" ] && break
		sleep 0.05
	done
	grep -q '^65534:[1-9]' "$T/who" || fail "pub/$f attributed to $(cat "$T/who"), not to nobody's process"
done
ok "attribution of versions committed at release"
cd /
umount_fs
