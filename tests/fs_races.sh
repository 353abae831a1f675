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

py "
import os
w = os.open('$MNT/la.conf', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(w, b'stale writer')
open('$MNT/new.tmp', 'w').write('deployed')
os.rename('$MNT/new.tmp', '$MNT/la.conf')
os.write(w, b' more')
os.close(w)
assert open('$MNT/la.conf').read() == 'deployed', open('$MNT/la.conf').read()
"
ok "a stale writer does not undo a rename-over"
cd /
umount_fs
