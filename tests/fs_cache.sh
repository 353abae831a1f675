#!/usr/bin/env bash
# Rule 12: kernel caches stay on.  Re-reading and stat-ing an unchanged
# config is served by the kernel (no LOOKUP, GETATTR or READ reaches the
# daemon; open is a round trip by design), and a head move is seen at once.
. "$(dirname "$0")/lib.sh"
mount_fs -d
printf '{"cached": 1}\n' > "$MNT/app.json"
cat "$MNT/app.json" >/dev/null; stat "$MNT/app.json" >/dev/null
log_settles
count() { grep -c "opcode: $1 " "$LOG" || true; }
l0=$(count LOOKUP); g0=$(count GETATTR); r0=$(count READ); o0=$(count OPEN); f0=$(count FLUSH)
for _ in $(seq 50); do
	stat -c %s "$MNT/app.json" >/dev/null
	cat "$MNT/app.json" >/dev/null
done
log_settles
expect_eq "$(( $(count LOOKUP) - l0 ))" 0 "LOOKUPs for 50 re-reads"
expect_eq "$(( $(count GETATTR) - g0 ))" 0 "GETATTRs for 50 stats"
expect_eq "$(( $(count READ) - r0 ))" 0 "READs for 50 re-reads of cached pages"
[ $(( $(count OPEN) - o0 )) -ge 50 ] || fail "expected one OPEN per open (counting works)"
expect_eq "$(( $(count FLUSH) - f0 ))" 0 "FLUSHes for 50 readers' closes (noflush)"
ok "unchanged config served by the kernel"

# A listing read once is kept by the kernel until the directory changes.
ls "$MNT" >/dev/null
d0=$(count READDIRPLUS)
for _ in $(seq 20); do ls "$MNT" >/dev/null; done
expect_eq "$(( $(count READDIRPLUS) - d0 ))" 0 "READDIRPLUS for 20 unchanged listings"
printf x > "$MNT/new.conf"
ls "$MNT" | grep -qx new.conf || fail "a new name missing from the listing"
ok "directory listings cached"

# A commit and a .control switch are visible at once despite the caches.
printf '{"cached": 2}\n' > "$MNT/app.json"
expect_eq "$(cat "$MNT/app.json")" '{"cached": 2}' "commit visible at once"
first=$(ls "$MNT/.versions/app.json" | sort -n | head -1)
echo "$first" > "$MNT/.control"
expect_eq "$(cat "$MNT/app.json")" '{"cached": 1}' "switch visible at once"
expect_eq "$(stat -c %s "$MNT/app.json")" 14 "size after switch"
ok "invalidation on head moves"

# .control's name and attributes never change: a switch is OPEN, WRITE and
# RELEASE of it (no LOOKUP, no FLUSH: its close has nothing to report).
second=$(ls "$MNT/.versions/app.json" | sort -n | tail -1)
log_settles
l0=$(count LOOKUP); f0=$(count FLUSH); w0=$(count WRITE)
for i in $(seq 10); do
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY); os.write(fd, sys.argv[2].encode()); os.close(fd)' \
		"$MNT/.control" "$([ $((i % 2)) = 0 ] && echo "$second" || echo "$first")"
done
log_settles
expect_eq "$(cat "$MNT/app.json")" '{"cached": 2}' "content after 10 switches"
[ $(( $(count WRITE) - w0 )) -ge 10 ] || fail "expected a WRITE per switch (counting works)"
expect_eq "$(( $(count LOOKUP) - l0 ))" 1 "LOOKUPs for 10 switches (one: app.json, read once after)"
expect_eq "$(( $(count FLUSH) - f0 ))" 0 "FLUSHes for 10 closes of .control"
ok ".control switches take no lookup or flush of .control"

# The first open of a version gives the kernel its bytes: reading it after
# a switch or a commit sends no READ.  A file over 256 KiB is read as usual.
log_settles
r0=$(count READ)
for i in $(seq 5); do
	printf '%s\n' "$([ $((i % 2)) = 0 ] && echo "$second" || echo "$first")" > "$MNT/.control"
	cat "$MNT/app.json" >/dev/null
	printf '{"round": %d}\n' "$i" > "$MNT/app.json"
	expect_eq "$(cat "$MNT/app.json")" "{\"round\": $i}" "content after commit $i"
done
log_settles
expect_eq "$(( $(count READ) - r0 ))" 0 "READs for 10 first reads of new versions"
head -c 300000 /dev/zero > "$MNT/big.bin"
r0=$(count READ)
cmp -s "$MNT/big.bin" <(head -c 300000 /dev/zero) || fail "big.bin content"
log_settles
[ $(( $(count READ) - r0 )) -ge 1 ] || fail "a 300000-byte file was read without READ (counting works)"
ok "new versions arrive with their bytes in the page cache"
umount_fs
