#!/usr/bin/env bash
# Atomicity under concurrency: while a writer commits ~300 versions of one
# file (O_TRUNC + one write, O_TRUNC + many small writes, write + fsync,
# temp file + rename over) and a switcher activates older version ids
# through .control, readers (open/read/close loops, a slow chunked reader,
# mmap, and one long-lived handle doing pread) must only ever see a whole
# committed version.  Every version carries its own checksum line:
#   seq=N\n<random bytes>\nsha256 <hex of everything before this line>\n
# Also: a handle opened before a commit keeps its bytes; close() and a
# .control write() return only once the change is visible.
. "$(dirname "$0")/lib.sh"

BG_PIDS=()
stop_bg() {
	local p
	for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	BG_PIDS=()
}
trap 'stop_bg; cleanup' EXIT

mount_fs
export MNT T
mkdir -p "$T/w" "$T/res"

cat >"$T/conc.py" <<'EOF'
import fcntl, hashlib, json, mmap, os, random, sys, time
import writers

MNT, T = os.environ['MNT'], os.environ['T']
P = os.path.join(MNT, 'hot.conf')
TMP = os.path.join(MNT, '.hot.conf.tmp')
VDIR = os.path.join(MNT, '.versions', 'hot.conf')
CTL = os.path.join(MNT, '.control')
STOP = os.path.join(T, 'stop')
LOCK = os.path.join(T, 'mutate.lock')
TAG = b'\nsha256 '
NCOMMITS = int(os.environ.get('NCOMMITS', '300'))
DEADLINE = time.time() + float(os.environ.get('WRITE_SECONDS', '40'))

def make(seq, rnd):
    n = rnd.randint(1, 64 * 1024)
    body = b'seq=%d\n' % seq
    body += rnd.randbytes(max(0, n - len(body)))
    return body + TAG + hashlib.sha256(body).hexdigest().encode() + b'\n'

def check(data):
    """The seq of a self-consistent version, or None."""
    if len(data) < 74 or data[-73:-65] != TAG or data[-1:] != b'\n':
        return None
    body = data[:-73]
    if hashlib.sha256(body).hexdigest().encode() != data[-65:-1]:
        return None
    if not body.startswith(b'seq=') or b'\n' not in body:
        return None
    try:
        return int(body[4:body.index(b'\n')])
    except ValueError:
        return None

def die(msg):
    sys.stderr.write('FAIL: %s\n' % msg)
    sys.exit(1)

def read_all(path):
    with open(path, 'rb', buffering=0) as f:
        return f.readall()

class Locked:
    """Mutation + its visibility check are one step for writer and switcher."""
    def __enter__(self):
        self.fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
    def __exit__(self, *a):
        os.close(self.fd)

def record(seq, data):
    with open(os.path.join(T, 'w', str(seq)), 'wb') as f:
        f.write(data)

# ---------------------------------------------------------------- writer
def writer():
    rnd = random.Random(int(os.environ.get('SEED', '1')))
    # WRITE_MODES=rename (say) restricts the mix, to tell which path tears.
    modes = {m: 0 for m in os.environ.get('WRITE_MODES', 'trunc1 trunc_many fsync rename').split()}
    kept = 0
    cur = read_all(P)
    for seq in range(2, NCOMMITS + 2):
        if time.time() > DEADLINE:
            print('writer: deadline reached after %d commits' % (seq - 2))
            break
        data = make(seq, rnd)
        record(seq, data)
        mode = rnd.choice(list(modes))
        modes[mode] += 1
        with Locked():
            cur = read_all(P)   # the switcher may have changed it
            probe = seq % 20 == 0
            if probe:
                # A handle that has read nothing yet, and one that read a
                # prefix, must both keep the version they opened.
                r1 = os.open(P, os.O_RDONLY)
                r2 = os.open(P, os.O_RDONLY)
                head = os.read(r2, 100)
            if mode == 'rename':
                writers.create(TMP, data)
                os.rename(TMP, P)
            else:
                writers.rewrite(P, data, mode, rnd)
            got = read_all(P)
            if got != data:
                die('writer: seq %d (%s) not visible after close/rename returned: '
                    'read %d bytes, seq %r' % (seq, mode, len(got), check(got)))
            if probe:
                rest = b''
                while True:
                    b = os.read(r2, 65536)
                    if not b:
                        break
                    rest += b
                full1 = b''
                while True:
                    b = os.read(r1, 65536)
                    if not b:
                        break
                    full1 += b
                pre = os.pread(r2, len(cur), 0)
                os.close(r1)
                os.close(r2)
                if full1 != cur:
                    die('writer: handle opened (unread) before commit %d lost its version: '
                        'got seq %r, %d bytes; want seq %r, %d bytes'
                        % (seq, check(full1), len(full1), check(cur), len(cur)))
                if head + rest != cur or pre != cur:
                    die('writer: handle opened (partly read) before commit %d lost its version: '
                        'got seq %r / pread seq %r; want seq %r'
                        % (seq, check(head + rest), check(pre), check(cur)))
                kept += 1
        time.sleep(0.002)
    print('writer: %d commits %s, %d old-handle probes passed' % (sum(modes.values()), modes, kept))

# ---------------------------------------------------------------- switcher
def switcher():
    rnd = random.Random(int(os.environ.get('SEED', '1')) + 7)
    n = 0
    ctl = os.open(CTL, os.O_WRONLY)
    while not os.path.exists(os.path.join(T, 'writer-done')):
        time.sleep(rnd.uniform(0.005, 0.03))
        ids = sorted(int(x) for x in os.listdir(VDIR))
        if len(ids) < 2:
            continue
        vid = rnd.choice(ids[:-1])
        want = read_all(os.path.join(VDIR, str(vid)))
        if check(want) is None:
            die('switcher: .versions/hot.conf/%d does not pass its checksum' % vid)
        with Locked():
            try:
                r = os.write(ctl, b'%d\n' % vid)
            except OSError as e:
                die('switcher: write of "%d\\n" to .control failed: %s' % (vid, e))
            if r != len(b'%d\n' % vid):
                die('switcher: short .control write %d' % r)
            got = read_all(P)
            if got != want:
                die('switcher: activate %d not visible when write() returned: live is '
                    'seq %r (%d bytes), version %d is seq %r (%d bytes)'
                    % (vid, check(got), len(got), vid, check(want), len(want)))
        n += 1
    os.close(ctl)
    print('switcher: %d switches through .control' % n)

# ---------------------------------------------------------------- readers
class Result:
    def __init__(self, name):
        self.name, self.reads, self.torn, self.errors, self.seen = name, 0, [], [], {}
    def verify(self, data, how, size=None):
        self.reads += 1
        seq = check(data)
        bad = seq is None or (size is not None and size != len(data))
        if bad:
            if len(self.torn) < 5:
                fn = os.path.join(T, 'res', 'torn-%s-%d.bin' % (self.name, len(self.torn)))
                with open(fn, 'wb') as f:
                    f.write(data)
                self.torn.append({'how': how, 'len': len(data), 'fstat_size': size,
                                  'seq': seq, 'head': data[:12].decode('latin1'), 'file': fn})
            else:
                self.torn.append(None)
            return
        self.seen.setdefault(seq, hashlib.sha256(data).hexdigest())
    def error(self, how, e):
        self.errors.append('%s: %s' % (how, e))
    def save(self):
        with open(os.path.join(T, 'res', self.name + '.json'), 'w') as f:
            json.dump({'name': self.name, 'reads': self.reads, 'torn': self.torn,
                       'errors': self.errors[:20], 'nerrors': len(self.errors),
                       'seen': self.seen}, f)

def reader(name):
    rnd = random.Random(name)
    res = Result(name)
    slow = name.startswith('slow')
    last_save = 0
    while not os.path.exists(STOP):
        if res.reads - last_save >= 200:
            res.save()   # an mmap reader may die of SIGBUS: keep its counts
            last_save = res.reads
        how = 'slow' if slow else 'mmap' if name.startswith('mmap') else rnd.choice(['readall', 'chunks'])
        try:
            fd = os.open(P, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if how == 'readall':
                    data = os.read(fd, 1 << 20)
                    while True:
                        b = os.read(fd, 1 << 20)
                        if not b:
                            break
                        data += b
                elif how == 'mmap':
                    if size == 0:
                        data = b''
                    else:
                        with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
                            data = bytes(m)
                else:
                    parts = []
                    csz = rnd.choice([1, 100, 4096, 5000, 65536]) if how == 'chunks' else 2048
                    while True:
                        b = os.read(fd, csz)
                        if not b:
                            break
                        parts.append(b)
                        if slow:
                            time.sleep(rnd.uniform(0, 0.0005))
                    data = b''.join(parts)
            finally:
                os.close(fd)
        except OSError as e:
            res.error(how, e)
            continue
        res.verify(data, how, size)
    res.save()

def preader():
    """One long-lived handle: it must keep showing the version it opened."""
    rnd = random.Random(99)
    res = Result('pread')
    fd = os.open(P, os.O_RDONLY)
    size = os.fstat(fd).st_size
    snap = os.pread(fd, size + 4096, 0)
    res.verify(snap, 'pread-initial', size)
    it = 0
    while not os.path.exists(STOP):
        it += 1
        if it % 50 == 0:
            # Drop its cached pages: the next reads come from the daemon.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            if it % 10 == 0:
                data = os.pread(fd, size + 4096, 0)
                res.verify(data, 'pread-full', os.fstat(fd).st_size)
                if data != snap:
                    res.torn.append({'how': 'pread-full changed', 'len': len(data),
                                     'seq': check(data), 'want_seq': check(snap)})
                continue
            off = rnd.randrange(0, max(1, len(snap)))
            n = rnd.randint(1, 20000)
            got = os.pread(fd, n, off)
            res.reads += 1
            if got != snap[off:off + n]:
                res.torn.append({'how': 'pread %d@%d changed' % (n, off), 'len': len(got)})
        except OSError as e:
            res.error('pread', e)
    os.close(fd)
    res.save()

# ---------------------------------------------------------------- verdict
def verdict():
    written = {}
    for fn in os.listdir(os.path.join(T, 'w')):
        with open(os.path.join(T, 'w', fn), 'rb') as f:
            written[int(fn)] = hashlib.sha256(f.read()).hexdigest()
    total, bad = 0, []
    seen_all = set()
    for fn in sorted(os.listdir(os.path.join(T, 'res'))):
        if not fn.endswith('.json'):
            continue
        with open(os.path.join(T, 'res', fn)) as f:
            r = json.load(f)
        total += r['reads']
        seen_all |= set(r['seen'])
        print('%-8s %7d reads checked, %d torn, %d errors, %d distinct versions seen'
              % (r['name'], r['reads'], len(r['torn']), r['nerrors'], len(r['seen'])))
        for t in r['torn'][:5]:
            bad.append('%s: torn/mixed read: %s' % (r['name'], t))
        for e in r['errors'][:5]:
            bad.append('%s: read error: %s' % (r['name'], e))
        for seq, h in r['seen'].items():
            if written.get(int(seq)) != h:
                bad.append('%s: read a self-consistent seq %s that was never written that way'
                           % (r['name'], seq))
    print('total: %d reads checked, %d distinct versions seen by readers' % (total, len(seen_all)))
    if total < 1000:
        bad.append('only %d reads checked: the readers did not run' % total)
    if bad:
        for b in bad[:20]:
            sys.stderr.write('FAIL: %s\n' % b)
        sys.exit(1)

def init():
    data = make(1, random.Random(0))
    record(1, data)
    with open(P, 'wb') as f:
        f.write(data)
    if read_all(P) != data:
        die('initial version not visible')

{'init': init, 'writer': writer, 'switcher': switcher, 'reader': lambda: reader(sys.argv[2]),
 'preader': preader, 'verdict': verdict}[sys.argv[1]]()
EOF
# Foreground only: a backgrounded function would give $! of a subshell.
run() { python3 "$T/conc.py" "$@"; }

run init || fail "initial commit"
declare -A NAME=()
for r in fast1 fast2 fast3 slow1 mmap1; do python3 "$T/conc.py" reader "$r" & BG_PIDS+=($!); NAME[$!]=$r; done
python3 "$T/conc.py" preader & BG_PIDS+=($!); NAME[$!]=pread
sleep 0.3
python3 "$T/conc.py" switcher & SW=$!; BG_PIDS+=($SW)
wrc=0; run writer || wrc=$?
touch "$T/writer-done"
src=0; wait "$SW" || src=$?
[ "$wrc" = 0 ] || fail "writer failed (see above)"
[ "$src" = 0 ] || fail "switcher failed (see above)"
touch "$T/stop"
died=
for p in "${!NAME[@]}"; do
	rc=0; wait "$p" || rc=$?
	if [ "$rc" = 135 ]; then
		died+=" ${NAME[$p]}: killed by SIGBUS (the file shrank under its mapping/read);"
	elif [ "$rc" != 0 ]; then
		died+=" ${NAME[$p]}: exit status $rc;"
	fi
done
BG_PIDS=()
vrc=0; run verdict || vrc=$?
[ -z "$died" ] || fail "reader died:$died"
[ "$vrc" = 0 ] || fail "readers saw torn or mixed content (see above)"
ok "no torn or mixed reads during commits and .control switches"

cd /
umount_fs
sqlite3 "$STORE" "pragma integrity_check" | grep -qx ok || fail "integrity_check"
ok "store intact"
