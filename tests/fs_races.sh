#!/usr/bin/env bash
# Writers racing with rename-over of the same name (deploy scripts do this):
# opens for writing must not fail, and a handle open on a file that a rename
# replaced writes into the replaced file, as on a local filesystem.
. "$(dirname "$0")/lib.sh"
mount_fs
cd "$MNT"

printf 'x\n' > t.conf
( for _ in $(seq 300); do echo a > t.tmp; mv t.tmp t.conf; done ) & mover=$!
failed=0
for _ in $(seq 300); do echo b > t.conf 2>>"$T/err" || failed=$((failed + 1)); done
wait "$mover" || fail "the mover failed"
expect_eq "$failed" 0 "opens for writing that failed while t.conf was renamed over ($(sort "$T/err" | uniq -c | head -3))"
case "$(cat t.conf)" in a|b) ;; *) fail "t.conf holds $(cat t.conf)" ;; esac
ok "O_TRUNC writers and rename-over of the same name"

# truncate(2), chmod(2) and utimes(2) by name, racing a rename over that
# name, land on one file or the other, as on a local filesystem: never
# ENOENT (the file they looked up lost its name before the change came).
echo x > u.conf
( for _ in $(seq 300); do echo a > u.tmp; mv u.tmp u.conf; done ) & mover=$!
out=$(python3 - "$MNT/u.conf" <<'EOF'
import os, sys
p = sys.argv[1]
fails = {}
for _ in range(300):
    for name, change in (('truncate', lambda: os.truncate(p, 1)), ('chmod', lambda: os.chmod(p, 0o644)),
                         ('utime', lambda: os.utime(p, (1, 2)))):
        try:
            change()
        except OSError as e:
            fails[name] = '%s: %s' % (name, os.strerror(e.errno))
print('; '.join(sorted(fails.values())))
EOF
)
wait "$mover" || fail "the mover failed"
expect_eq "$out" "" "changes by name that failed while u.conf was renamed over"
ok "truncate/chmod/utimes by name and rename-over of the same name"

py "
import os
w = os.open('$MNT/la.conf', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(w, b'stale writer')
open('$MNT/new.tmp', 'w').write('deployed')
os.rename('$MNT/new.tmp', '$MNT/la.conf')
os.write(w, b' more')
# Its handle is on a file that lost its name, as after an unlink: fstat
# works (an open being retried when the rename came needs it too).
st = os.fstat(w)
assert (st.st_nlink, st.st_size) == (0, len('stale writer more')), st
os.close(w)
assert open('$MNT/la.conf').read() == 'deployed', open('$MNT/la.conf').read()
"
ok "a stale writer does not undo a rename-over; fstat of its handle"

# fsync, truncate and .control writes hold their file's inode lock while
# the reply waits for an invalidation that needs the directory's lock,
# which a rename, unlink or link of that name holds while it waits for the
# inode: the reply goes out after a bounded wait, and nothing hangs.
mkdir -p "$MNT/hang" "$MNT/other"
echo a >"$MNT/hang/t"
race() { # seconds code
	timeout -s KILL 30 python3 -c "import os, time
M = '$MNT'; end = time.time() + $1
while time.time() < end:
    try:
        $2
    except OSError:
        pass" || fail "a racer did not finish (hang?): $2"
}
race 2 "fd = os.open(M + '/hang/n', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644); os.write(fd, b'x'); os.fsync(fd); os.close(fd); os.unlink(M + '/hang/n')" &
R1=$!
race 2 "os.rename(M + '/hang/n', M + '/hang/m')" &
R2=$!
race 2 "os.truncate(M + '/hang/t', int(time.time() * 1000) % 7)" &
R3=$!
race 2 "open(M + '/hang/t.tmp', 'w').write('b'); os.rename(M + '/hang/t.tmp', M + '/hang/t')" &
R4=$!
wait $R1 && wait $R2 && wait $R3 && wait $R4 || fail "racers failed"
timeout 10 sh -c "echo y > '$MNT/other/u'" || fail "an unrelated write hangs after the races"
ok "fsync/truncate against rename of the same name: no hang"
cd /
umount_fs
