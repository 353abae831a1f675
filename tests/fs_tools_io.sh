#!/usr/bin/env bash
# Lower-level ways configs change: a Kubernetes ConfigMap volume's symlink
# swap (and ln -sfn), truncate -s, dd conv=notrunc into the middle, O_APPEND
# from two processes at once, shared writable mmap; and the plain-syscall
# reproducers behind what tests/fs_tools*.sh find with real tools (inode
# identity of a write handle, times across commit, chmod and rename).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs_tools_lib.sh"
mount_fs

# --- Kubernetes ConfigMap: ..TIMESTAMP dir + ..data symlink swapped by rename --
# kubelet's atomic writer: write the new ..TIMESTAMP directory, symlink
# ..data_tmp -> it, rename ..data_tmp over ..data, remove the old directory.
# The top-level names are symlinks into ..data and never change.
cm_init() {
	mkdir ..2026_12_03_10_00_00.000 &&
		printf '{"v": 0}\n' >..2026_12_03_10_00_00.000/config.json &&
		printf 'level=0\n' >..2026_12_03_10_00_00.000/log.conf &&
		ln -s ..2026_12_03_10_00_00.000 ..data &&
		ln -s ..data/config.json config.json && ln -s ..data/log.conf log.conf
}
cm_swap() { # K: publish version K, the kubelet way
	local d old
	d=..2026_12_03_10_0$1_00.$1$1$1
	old=$(readlink ..data)
	mkdir "$d" && printf '{"v": %d}\n' "$1" >"$d/config.json" && printf 'level=%d\n' "$1" >"$d/log.conf" &&
		ln -s "$d" ..data_tmp && python3 -c 'import os; os.rename("..data_tmp", "..data")' &&
		rm -rf "$old"
}
s=configmap
in_both $s cm_init
want "$(cat "$MNT/$s/config.json")" '{"v": 0}' "configmap: read through ..data"
# A reader loops over both files while the swaps run: every read must be a
# whole published version, never ENOENT, a dangling link or a mix.
python3 - "$MNT/$s" >"$T/cm-reader" 2>&1 <<'EOF' &
import json, os, sys, time
d = sys.argv[1]
stop = time.time() + 30
reads = errors = 0
while time.time() < stop and not os.path.exists(d + "/../cm-stop"):
    try:
        v = json.load(open(d + "/config.json"))["v"]
        l = open(d + "/log.conf").read()
        if not l.startswith("level=") or not 0 <= v <= 9:
            errors += 1; print("bad read", v, repr(l))
        reads += 1
    except Exception as e:
        errors += 1; print("read error", repr(e))
print("reads", reads, "errors", errors)
EOF
reader=$!
for k in 1 2 3 4 5 6 7 8 9; do
	in_both $s cm_swap $k
	want "$(cat "$MNT/$s/config.json")" "{\"v\": $k}" "configmap swap $k: config.json"
	want "$(cat "$MNT/$s/log.conf")" "level=$k" "configmap swap $k: log.conf"
	want "$(readlink "$MNT/$s/..data")" "..2026_12_03_10_0${k}_00.$k$k$k" "configmap swap $k: ..data"
done
mkdir "$MNT/cm-stop"
wait $reader || true
grep -q 'errors 0$' "$T/cm-reader" || bad "configmap: the concurrent reader saw a broken state: $(tail -5 "$T/cm-reader")"
rmdir "$MNT/cm-stop"
same_as_plain $s "configmap after 9 swaps"
want "$(nversions $s/..data)" 10 "configmap: ..data has one version per swap"
want "$(nversions $s/config.json)" 1 "configmap: the top-level symlink never changed"
want "$(cat "$MNT/.versions/$s/..data/$(ls "$MNT/.versions/$s/..data" | sort -n | head -1)")" \
	..2026_12_03_10_00_00.000 "configmap: the first ..data version holds the first target"
want "$(ls "$MNT/$s" | tr '\n' ' ')" "config.json log.conf " "configmap: ls shows only the published names"
ok_if "Kubernetes ConfigMap swaps (rename of ..data_tmp over ..data), concurrent reader: $(tail -1 "$T/cm-reader")"

# ln -sfn swaps of the same kind of link.
lnswap() { mkdir -p "..v$1" && printf '{"v": %d}\n' "$1" >"..v$1/config.json" && ln -sfn "..v$1" ..data; }
s=lnsfn
in_both $s sh -c 'mkdir ..v0 && printf "{\"v\": 0}\n" >..v0/config.json && ln -s ..v0 ..data && ln -s ..data/config.json config.json'
for k in 1 2 3; do
	in_both $s lnswap $k
	want "$(cat "$MNT/$s/config.json")" "{\"v\": $k}" "ln -sfn swap $k"
done
in_both $s lnswap 1
want "$(cat "$MNT/$s/config.json")" '{"v": 1}' "ln -sfn back to an earlier target"
same_as_plain $s "ln -sfn swaps"
want "$(nversions $s/..data)" 5 "ln -sfn: one ..data version per swap"
ok_if "ln -sfn swaps"

# --- truncate -s, dd conv=notrunc --------------------------------------------------
s=sizes
setup() { printf '0123456789\n' >d.conf && chown 5:6 d.conf && chmod 640 d.conf; }
in_both $s setup
step() { # WHAT BYTES(printf format) CMD...
	local what=$1 bytes=$2 before; shift 2
	before=$(hist $s/d.conf)
	in_both $s "$@"
	same_as_plain $s "$what"
	want "$(od -An -c "$MNT/$s/d.conf" | tr -s ' ')" "$(printf "$bytes" | od -An -c | tr -s ' ')" "$what: bytes"
	want "$(stat -c '%a %u %g' "$MNT/$s/d.conf")" "640 5 6" "$what: mode and owner kept"
	check_hist "$what" $s/d.conf "$before" 1 "$(printf "$bytes" | sha256sum | cut -c1-12)"
}
step "truncate -s 5 (shrink)" '01234' truncate -s 5 d.conf
step "truncate -s 8 (grow, zero-filled)" '01234\0\0\0' truncate -s 8 d.conf
step "dd conv=notrunc seek=2" '01XY4\0\0\0' sh -c "printf XY | dd of=d.conf bs=1 seek=2 conv=notrunc status=none"
step "dd conv=notrunc seek past the end" '01XY4\0\0\0\0\0ZZ' sh -c "printf ZZ | dd of=d.conf bs=1 seek=10 conv=notrunc status=none"
step "truncate -s 0" '' truncate -s 0 d.conf
want "$(od -An -c "$MNT/.versions/$s/d.conf/$(ls "$MNT/.versions/$s/d.conf" | sort -n | head -1)" | tr -s ' ')" \
	"$(printf '0123456789\n' | od -An -c | tr -s ' ')" "the first version is untouched"
ok_if "truncate -s and dd conv=notrunc"

# --- O_APPEND from two processes at once -----------------------------------------
# Each process opens, appends one line, closes, 100 times; then both keep one
# O_APPEND handle open and write 100 lines each, interleaved.
: >"$MNT/app.log"
appender() { # TAG MODE
	python3 - "$MNT/app.log" "$1" "$2" <<'EOF'
import os, sys
p, tag, mode = sys.argv[1:]
if mode == "reopen":
    for i in range(100):
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"%s-%03d\n" % (tag.encode(), i))
        os.close(fd)
else:
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    for i in range(100):
        os.write(fd, b"%s-held-%03d\n" % (tag.encode(), i))
    os.close(fd)
EOF
}
appender A reopen & a=$!
appender B reopen & b=$!
wait $a || bad "O_APPEND: writer A failed"
wait $b || bad "O_APPEND: writer B failed"
appender A held & a=$!
appender B held & b=$!
wait $a || bad "O_APPEND: held writer A failed"
wait $b || bad "O_APPEND: held writer B failed"
out=$(python3 - "$MNT" app.log <<'EOF'
import os, sys
mnt, p = sys.argv[1:]
want = {"%s-%03d" % (t, i) for t in "AB" for i in range(100)} | {"%s-held-%03d" % (t, i) for t in "AB" for i in range(100)}
live = open(os.path.join(mnt, p)).read()
lines = live.splitlines()
errs = []
if not live.endswith("\n") or len(lines) != len(set(lines)) or set(lines) != want:
    errs.append("live file: %d lines, %d distinct, %d missing, %d unexpected" % (
        len(lines), len(set(lines)), len(want - set(lines)), len(set(lines) - want)))
# Every version is whole lines, and each one extends the one before.
vd = os.path.join(mnt, ".versions", p)
prev = ""
ids = sorted(os.listdir(vd), key=int)
for i in ids:
    b = open(os.path.join(vd, i)).read()
    if not b.startswith(prev):
        errs.append("version %s does not extend version before it" % i)
    if b and not b.endswith("\n") or not set(b.splitlines()) <= want:
        errs.append("version %s holds a torn line" % i)
    prev = b
if prev != live:
    errs.append("newest version is not the live file")
print("; ".join(errs) if errs else "ok %d versions" % len(ids))
EOF
)
case $out in ok*) ok "O_APPEND from two processes (reopen and held handles): $out" ;; *) bad "O_APPEND: $out" ;; esac
CASE_FAILS=$FAILS

# --- shared writable mmap ----------------------------------------------------------
# Either it works (the bytes land as a version once msync'd and closed) or
# mmap() itself is refused with a clear errno; never a silently lost write or
# a changed old version.  A private read-only mapping must always work.
s=mmap
mkdir -p "$MNT/$s"
printf 'hello world\n' >"$MNT/$s/m.conf"
printf 'again\n' >"$MNT/$s/m.conf"
before=$(hist $s/m.conf)
out=$(python3 - "$MNT/$s/m.conf" <<'EOF'
import errno, mmap, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDONLY)
m = mmap.mmap(fd, 0, mmap.MAP_PRIVATE, mmap.PROT_READ)
assert m[:] == b"again\n", m[:]
m.close(); os.close(fd)
fd = os.open(p, os.O_RDWR)
try:
    m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
except OSError as e:
    ok = e.errno in (errno.ENODEV, errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOTSUP)
    print("refused" if ok else "odd-errno", errno.errorcode.get(e.errno, e.errno))
    os.close(fd); sys.exit(0)
m[0:5] = b"AGAIN"
m.flush()
m.close()
os.close(fd)
print("mapped")
EOF
) || bad "mmap: python failed: $out"
case $out in
refused*)
	echo "note: shared writable mmap refused with ${out#refused }"
	want "$(cat "$MNT/$s/m.conf")" again "mmap refused: live file unchanged"
	check_hist "mmap refused" $s/m.conf "$before" 0 "" ;;
mapped)
	want "$(cat "$MNT/$s/m.conf")" AGAIN "mmap: the mapped write is live after msync + close"
	check_hist "mmap" $s/m.conf "$before" 1 "$(printf 'AGAIN\n' | sha256sum | cut -c1-12)" ;;
*) bad "mmap: unexpected outcome: $out" ;;
esac
want "$(cat "$MNT/.versions/$s/m.conf/$(ls "$MNT/.versions/$s/m.conf" | sort -n | head -1)")" "hello world" "mmap: old version unchanged"
ok_if "shared writable mmap ($out); private read mapping"

# --- reproducers behind the tool failures ------------------------------------------
s=repro
mkdir -p "$MNT/$s"
printf 'x=1\n' >"$MNT/$s/f.conf"
# vim (backupcopy=yes, nowritebackup) compares the inode of the descriptor it
# writes through with the one it stat'ed: E949 "File changed while writing".
out=$(python3 - "$MNT/$s/f.conf" <<'EOF'
import os, sys
p = sys.argv[1]
a = os.stat(p).st_ino
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
b = os.fstat(fd).st_ino
os.close(fd)
c = os.stat(p).st_ino
print("stat %d, fstat of a write handle %d, stat after close %d" % (a, b, c))
sys.exit(0 if a == b == c else 1)
EOF
) || bad "inode of a file changes when it is opened for writing (no write at all): $out"
# The same right after sed -i (a temp file renamed over the name): the
# kernel kept the temp file's attributes under the new name, and vim then
# saw another inode in fstat than in stat, asked, and saved nothing.
printf 'line1\nline2\n' >"$MNT/$s/sed.conf"
sed -i 's/line1/L1/' "$MNT/$s/sed.conf"
out=$(python3 - "$MNT/$s/sed.conf" <<'EOF'
import os, sys
p = sys.argv[1]
a = os.stat(p).st_ino
fd = os.open(p, os.O_WRONLY)
b = os.fstat(fd).st_ino
os.close(fd)
print("stat %d, fstat of a write handle %d" % (a, b))
sys.exit(0 if a == b else 1)
EOF
) || bad "inode after sed -i differs between stat and the next open: $out"
if command -v vim >/dev/null; then
	sed -i 's/L1/L1b/' "$MNT/$s/sed.conf"
	timeout 20 vim -u NONE -i NONE -n -es -c '%s/line2/LINE2/' -c wq "$MNT/$s/sed.conf" </dev/null ||
		bad "vim could not save right after sed -i"
	[ "$(cat "$MNT/$s/sed.conf")" = "$(printf 'L1b\nLINE2')" ] || bad "vim after sed -i: $(cat "$MNT/$s/sed.conf")"
fi
# cp -a, cp -p, tar x, rsync -a set times on the handle before close, or
# chmod/chown/rename after setting them; every one of these must keep them.
out=$(python3 - "$MNT/$s" <<'EOF'
import os, subprocess, sys
d = sys.argv[1]
T = 1577934245
errs = []
p = d + "/t1"
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644); os.write(fd, b"t\n")
os.utime(fd, (T, T)); os.close(fd)
if os.stat(p).st_mtime != T: errs.append("futimens on the write handle, then close: mtime %d" % os.stat(p).st_mtime)
p = d + "/t2"
open(p, "w").write("t\n"); os.utime(p, (T, T)); os.chmod(p, 0o600)
if os.stat(p).st_mtime != T: errs.append("utimes, then chmod: mtime %d" % os.stat(p).st_mtime)
os.utime(p, (T, T)); os.chown(p, 5, 6)
if os.stat(p).st_mtime != T: errs.append("utimes, then chown: mtime %d" % os.stat(p).st_mtime)
p = d + "/t3"
open(p, "w").write("t\n"); os.utime(p, (T, T)); os.rename(p, d + "/t4")
m1 = os.stat(d + "/t4").st_mtime
subprocess.run(["ls", "-l", d], stdout=subprocess.DEVNULL)
m2 = os.stat(d + "/t4").st_mtime
if not m1 == m2 == T: errs.append("utimes, then rename: mtime %d by stat, %d after ls -l" % (m1, m2))
print("; ".join(errs))
EOF
)
[ -z "$out" ] || bad "times not kept: $out"
ok_if "reproducers: inode of a write handle, times across close/chmod/chown/rename"

finish
