#!/usr/bin/env bash
# Rule 1: ordinary files, directories and symlinks behave as on a local filesystem.
. "$(dirname "$0")/lib.sh"
mount_fs
cd "$MNT"

# create, write, read; sizes, modes, owners
printf 'hello\n' > a.txt
expect_eq "$(cat a.txt)" "hello" "read back"
expect_eq "$(stat -c '%s %a %u %g %F' a.txt)" "6 644 0 0 regular file" "stat of a new file"
umask 027; printf x > b.txt; umask 022
expect_eq "$(stat -c %a b.txt)" "640" "umask applies to new files"
ok "create/read/stat"

# O_APPEND from the shell and from two handles at once
printf 'one\n' >> a.txt
expect_eq "$(cat a.txt)" $'hello\none' "append"
py "
import os
p='$MNT/log.txt'
a=os.open(p, os.O_WRONLY|os.O_CREAT|os.O_APPEND, 0o644)
b=os.open(p, os.O_WRONLY|os.O_APPEND)
for i in range(5):
    os.write(a, b'a%d\n' % i); os.write(b, b'b%d\n' % i)
os.close(a); os.close(b)
assert open(p,'rb').read().count(b'\n') == 10, open(p,'rb').read()
"
ok "O_APPEND writers all land"

# O_EXCL: visible at once to others, second creator gets EEXIST
py "
import os, errno
p='$MNT/lock'
fd=os.open(p, os.O_WRONLY|os.O_CREAT|os.O_EXCL, 0o600)
assert os.path.exists(p)
try:
    os.open(p, os.O_WRONLY|os.O_CREAT|os.O_EXCL); raise SystemExit('second O_EXCL create succeeded')
except OSError as e:
    assert e.errno == errno.EEXIST, e
os.close(fd)
"
ok "O_EXCL"

# writes at offsets, holes, O_TRUNC, truncate/ftruncate, read back through the handle
py "
import os
p='$MNT/off.bin'
fd=os.open(p, os.O_RDWR|os.O_CREAT, 0o644)
os.pwrite(fd, b'AAAA', 0); os.pwrite(fd, b'BB', 1); os.pwrite(fd, b'Z', 10)
assert os.pread(fd, 100, 0) == b'ABBA' + b'\0'*6 + b'Z', os.pread(fd, 100, 0)
assert os.fstat(fd).st_size == 11, os.fstat(fd).st_size
os.ftruncate(fd, 3)
assert os.pread(fd, 100, 0) == b'ABB'
os.close(fd)
assert open(p,'rb').read() == b'ABB'
os.truncate(p, 5)
assert open(p,'rb').read() == b'ABB\0\0'
fd=os.open(p, os.O_WRONLY|os.O_TRUNC); os.write(fd, b'new'); os.close(fd)
assert open(p,'rb').read() == b'new'
"
expect_eq "$(stat -c %s off.bin)" "3" "size after O_TRUNC rewrite"
ok "offsets, truncate, O_TRUNC"

# directories
mkdir -p d1/d2
printf 'x' > d1/d2/f
expect_eq "$(ls d1)" "d2" "readdir"
expect_eq "$(stat -c %F d1)" "directory" "directory type"
expect_fail "not empty" rmdir d1/d2
rm d1/d2/f; rmdir d1/d2
expect_eq "$(ls d1)" "" "empty after rmdir"
expect_fail "Is a directory" rm d1
expect_fail "Not a directory" rmdir a.txt
# A file created and still open, not committed yet, makes its directory
# non-empty for rename over it too (as for rmdir); once closed it is there.
mkdir -p src held
py "
import errno, os
fd = os.open('held/new.conf', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'x')
for op in (lambda: os.rename('src', 'held'), lambda: os.rmdir('held')):
    try:
        op()
        raise SystemExit('rename/rmdir over a directory with an open new file succeeded')
    except OSError as e:
        assert e.errno == errno.ENOTEMPTY, e
os.close(fd)
"
expect_eq "$(cat held/new.conf)" "x" "the new file after its close"
rmdir src
ok "mkdir/rmdir/ENOTEMPTY"

# symlinks
ln -s a.txt link
expect_eq "$(readlink link)" "a.txt" "readlink"
expect_eq "$(cat link)" $'hello\none' "read through symlink"
expect_eq "$(stat -c %F link)" "symbolic link" "lstat type"
ln -sfn b.txt link
expect_eq "$(readlink link)" "b.txt" "ln -sfn swaps"
ok "symlinks"

# rename, RENAME_NOREPLACE, other flags EINVAL
printf 'tmp' > t1
mv t1 t2
[ ! -e t1 ] && expect_eq "$(cat t2)" "tmp" "mv"
py "
import ctypes, os, errno
libc=ctypes.CDLL(None, use_errno=True)
AT=-100
def r(a,b,flags):
    if libc.renameat2(AT, a.encode(), AT, b.encode(), flags) != 0:
        return ctypes.get_errno()
    return 0
os.chdir('$MNT')
assert r('t2','a.txt',1) == errno.EEXIST          # RENAME_NOREPLACE onto an existing name
assert r('t2','t3',1) == 0 and os.path.exists('t3')
assert r('t3','a.txt',2) == errno.EINVAL          # RENAME_EXCHANGE
assert r('t3','a.txt',4) == errno.EINVAL          # RENAME_WHITEOUT
"
mkdir dd; printf 1 > dd/x; mv dd ee
expect_eq "$(cat ee/x)" "1" "directory rename carries children"
[ ! -e dd ] || fail "old directory name still there"
ok "rename"

# A file renamed over another while its writer still holds it open keeps,
# in the kernel, the inode writers use; other processes must still be able
# to mmap(2) the name (it once failed ENODEV: that inode is read around the
# page cache).  The reader is another process (the writer sees its draft),
# started outside the mount: Python lists its working directory for imports,
# and that READDIRPLUS would refresh the kernel's entry first.
printf 'old\n' > mm.conf
py "
import os, subprocess, sys
fd = os.open('$MNT/.mm.conf.tmp', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b'new content\n')
os.rename('$MNT/.mm.conf.tmp', '$MNT/mm.conf')
reader = '''
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
with mmap.mmap(fd, os.fstat(fd).st_size, prot=mmap.PROT_READ) as m:
    assert m[:] == b'new content\\\\n', m[:]
'''
for _ in range(2):
    subprocess.run([sys.executable, '-c', reader, '$MNT/mm.conf'], check=True, cwd='/')
os.close(fd)
" || fail "mmap of a name renamed over while its writer holds it open"
expect_eq "$(cat mm.conf)" "new content" "renamed-over name after its writer closed"
ok "mmap of a name renamed over by a file still open"

# chmod, chown, utimens, access
chmod 600 a.txt
expect_eq "$(stat -c %a a.txt)" "600" "chmod"
chown 1234:5678 a.txt
expect_eq "$(stat -c '%u %g' a.txt)" "1234 5678" "chown"
touch -d '2020-01-02 03:04:05 UTC' b.txt
expect_eq "$(TZ=UTC stat -c %y b.txt)" "2020-01-02 03:04:05.000000000 +0000" "utimens"
[ -r a.txt ] && [ -w a.txt ] || fail "access(2)"
# cp -a sets times through the handle before close: they must survive the commit.
printf 'p\n' > "$T/src"; touch -d '2020-05-05 05:05:05 UTC' "$T/src"; chmod 640 "$T/src"
cp -a "$T/src" new-p.conf; cp -a "$T/src" b.txt
expect_eq "$(TZ=UTC stat -c '%y %a' new-p.conf)" "2020-05-05 05:05:05.000000000 +0000 640" "cp -a of a new file"
expect_eq "$(TZ=UTC stat -c '%y %a' b.txt)" "2020-05-05 05:05:05.000000000 +0000 640" "cp -a over a file"
ok "chmod/chown/utimens/access"

# FIFOs and device nodes: EPERM; statfs answers
expect_fail "Operation not permitted" mkfifo fifo
expect_fail "Operation not permitted" mknod dev c 1 3
df -P "$MNT" >/dev/null || fail "statfs"
stat -f -c %l "$MNT" | grep -qx 255 || fail "statfs namemax"
mkdir -p mk; ls mk >/dev/null
timeout 10 python3 -c "import os; os.mknod('$MNT/mk/reg', 0o644)" || fail "mknod of a regular file hung or failed"
expect_eq "$(stat -c '%F %s' mk/reg)" "regular empty file 0" "mknod S_IFREG"
ok "mknod EPERM, statfs"

# fsync
py "
import os
fd=os.open('$MNT/s.txt', os.O_WRONLY|os.O_CREAT, 0o644); os.write(fd,b'x'); os.fsync(fd); os.close(fd)
assert open('$MNT/s.txt').read() == 'x'
"
ok "fsync"
cd /
umount_fs
