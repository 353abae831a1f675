#!/usr/bin/env bash
# kill -9 recovery, many cycles.  Each cycle: mount, start a writer (commits
# files by O_TRUNC + write, many small writes, write + fsync, temp file +
# rename over, unlink) and a reader; after a random short delay kill -9 the
# daemon; the mount must report "Transport endpoint is not connected"; stop
# writer and reader, fusermount3 -u, check a copy of the store with
# integrity_check, and restart on the same store.  After each restart:
#
#   The writer logs "I op" before an operation and "D op" only after its
#   close()/rename()/unlink() returned success; it is sequential, so at most
#   one op (the last "I" without its "D") was in flight at the kill.  Let
#   BEFORE be the tree the log predicts from the last verified state plus
#   every done op, and AFTER = BEFORE plus the in-flight op.  The live tree
#   (every path and its exact bytes) must equal BEFORE or AFTER as a whole.
#   Every live file passes its own checksum (nothing half-written is live),
#   and every done write of the cycle is in that path's .versions history.
. "$(dirname "$0")/lib.sh"

CYCLES=${CYCLES:-40}
BUDGET=${BUDGET:-40}   # seconds for all cycles

BG_PIDS=()
stop_bg() {
	local p
	for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	BG_PIDS=()
}
# A mount whose daemon died fails mountpoint -q (ENOTCONN), so lib.sh's
# stop_daemon would not unmount it: do it here by /proc/mounts.
crash_cleanup() {
	stop_bg
	if [ -n "$DAEMON_PID" ]; then kill -9 "$DAEMON_PID" 2>/dev/null || true; fi
	if grep -q " $MNT fuse" /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
	fi
	cleanup
}
trap crash_cleanup EXIT

export MNT T
WLOG=$T/writes.log
: >"$WLOG"
: >"$T/torn.log"

cat >"$T/crash.py" <<'EOF'
import errno, hashlib, json, os, random, sys, time
import writers

MNT, T = os.environ['MNT'], os.environ['T']
WLOG = os.path.join(T, 'writes.log')
TAG = b'\nsha256 '
PATHS = ['a.conf', 'b.conf', 'd/c.conf', 'd/e/f.conf', 'g.ini']
OK_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)

def make(label, rnd):
    n = rnd.randint(1, 16 * 1024)
    body = label.encode() + b'\n'
    body += rnd.randbytes(max(0, n - len(body)))
    return body + TAG + hashlib.sha256(body).hexdigest().encode() + b'\n'

def selfcheck(data):
    if len(data) < 74 or data[-73:-65] != TAG or data[-1:] != b'\n':
        return False
    return hashlib.sha256(data[:-73]).hexdigest().encode() == data[-65:-1]

def sha(data):
    return hashlib.sha256(data).hexdigest()

# ------------------------------------------------------------------ writer
def writer(cycle):
    rnd = random.Random(cycle * 7919 + os.getpid())
    log = os.open(WLOG, os.O_WRONLY | os.O_APPEND)
    def rec(kind, op):
        os.write(log, (kind + ' ' + json.dumps(op, sort_keys=True) + '\n').encode())
    os.makedirs(os.path.join(MNT, 'd', 'e'), exist_ok=True)
    i = 0
    try:
        while True:
            i += 1
            path = rnd.choice(PATHS + ['n%d-%d.conf' % (cycle, i)] * (i % 40 == 0))
            full = os.path.join(MNT, path)
            mode = rnd.choice(['trunc1', 'trunc_many', 'fsync', 'rename', 'rename', 'unlink'])
            if mode == 'unlink':
                if not os.path.exists(full):
                    continue
                op = {'k': 'rm', 'p': path}
                rec('I', op); os.unlink(full); rec('D', op)
                continue
            data = make('%s cycle %d op %d %s' % (path, cycle, i, mode), rnd)
            h = sha(data)
            if mode == 'rename':
                tmp = os.path.join(os.path.dirname(path), '.tmp-%d-%d' % (cycle, i))
                op = {'k': 'w', 'p': tmp, 'h': h}
                rec('I', op)
                writers.create(os.path.join(MNT, tmp), data)
                rec('D', op)
                op = {'k': 'mv', 'from': tmp, 'to': path, 'h': h}
                rec('I', op); os.rename(os.path.join(MNT, tmp), full); rec('D', op)
                continue
            op = {'k': 'w', 'p': path, 'h': h}
            rec('I', op)
            writers.rewrite(full, data, mode, rnd, chunk_max=2000, create=True)
            rec('D', op)
    except OSError as e:
        with open(os.path.join(T, 'writer-errors'), 'a') as f:
            f.write('%d %s %s\n' % (cycle, errno.errorcode.get(e.errno, e.errno), e))

# ------------------------------------------------------------------ reader
def reader(cycle):
    rnd = random.Random(cycle)
    reads = 0
    while True:
        path = rnd.choice(PATHS)
        try:
            with open(os.path.join(MNT, path), 'rb', buffering=0) as f:
                data = f.readall()
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno in OK_ERRNOS:
                break
            continue
        reads += 1
        # A file created and not yet committed reads as empty (by design).
        if data and not selfcheck(data):
            with open(os.path.join(T, 'torn.log'), 'a') as f:
                f.write('cycle %d: %s: %d bytes fail their checksum (head %r)\n'
                        % (cycle, path, len(data), data[:40]))
        if reads % 50 == 0:
            with open(os.path.join(T, 'reads-%d' % cycle), 'w') as f:
                f.write('%d\n' % reads)

# ------------------------------------------------------------------ verify
def apply(state, op):
    s = dict(state)
    if op['k'] == 'w':
        s[op['p']] = op['h']
    elif op['k'] == 'mv':
        s[op['to']] = s.pop(op['from'], None)
    elif op['k'] == 'rm':
        s.pop(op['p'], None)
    return s

def live_tree():
    tree, bad = {}, []
    for root, dirs, files in os.walk(MNT):
        for fn in files:
            full = os.path.join(root, fn)
            rel = os.path.relpath(full, MNT)
            with open(full, 'rb') as f:
                data = f.read()
            if not selfcheck(data):
                bad.append('%s: %d bytes fail their own checksum: half-written content '
                           'is live (head %r)' % (rel, len(data), data[:40]))
            tree[rel] = sha(data)
    return tree, bad

def history(path):
    d = os.path.join(MNT, '.versions', path)
    out = set()
    try:
        ids = os.listdir(d)
    except OSError:
        return out
    for vid in ids:
        try:
            with open(os.path.join(d, vid), 'rb') as f:
                out.add(sha(f.read()))
        except OSError:
            pass
    return out

def verify(cycle):
    lines = open(WLOG).read().splitlines()
    start, state = 0, {}
    for k, line in enumerate(lines):
        if line.startswith('S '):
            start, state = k + 1, json.loads(line[2:])
    done, inflight, ndone = [], None, 0
    for line in lines[start:]:
        kind, op = line[0], json.loads(line[2:])
        if kind == 'I':
            inflight = op
        elif kind == 'D':
            if op != inflight:
                sys.exit('FAIL: log out of order: %s' % line)
            state = apply(state, op)
            done.append(op)
            inflight = None
    before = state
    after = apply(before, inflight) if inflight else before
    live, bad = live_tree()
    errs = list(bad)
    if live != before and live != after:
        diff = []
        for p in sorted(set(live) | set(before) | set(after)):
            l, b, a = live.get(p), before.get(p), after.get(p)
            if l != b and l != a:
                diff.append('%s: live %s, last logged %s%s' % (
                    p, (l or 'absent')[:12], (b or 'absent')[:12],
                    ', in flight %s' % (a or 'absent')[:12] if a != b else ''))
            elif l != b or l != a:
                diff.append('%s: %s' % (p, 'as before the in-flight op' if l == b
                                        else 'as after the in-flight op'))
        errs.append('live tree is neither the logged state nor the logged state plus the '
                    'in-flight op %s:\n    %s' % (json.dumps(inflight), '\n    '.join(diff)))
    hist = {}
    for op in done:
        p = op.get('p') if op['k'] == 'w' else op['to'] if op['k'] == 'mv' else None
        if p is None:
            continue
        if p not in hist:
            hist[p] = history(p)
        if op['h'] not in hist[p]:
            errs.append('%s: a write whose close() returned success (%s) is not in '
                        '.versions/%s' % (p, op['h'][:12], p))
    if errs:
        for e in errs[:10]:
            sys.stderr.write('FAIL: after restart %d: %s\n' % (cycle, e))
        sys.exit(1)
    with open(WLOG, 'a') as f:
        f.write('S ' + json.dumps(live, sort_keys=True) + '\n')
    which = 'no op in flight' if not inflight else (
        'in-flight %s %s' % (inflight['k'], 'landed' if live == after and after != before
                             else 'did not land' if after != before else 'no-op'))
    print('cycle %d: %d done ops verified, %d live files, %s' % (cycle, len(done), len(live), which))

{'writer': writer, 'reader': reader, 'verify': verify}[sys.argv[1]](int(sys.argv[2]))
EOF
# Foreground only: a backgrounded function would give $! of a subshell.
run() { python3 "$T/crash.py" "$@"; }

start=$SECONDS
cycle=0
landed=0
while [ "$cycle" -lt "$CYCLES" ] && [ $((SECONDS - start)) -lt "$BUDGET" ]; do
	cycle=$((cycle + 1))
	mount_fs
	if [ "$cycle" -gt 1 ]; then
		run verify $((cycle - 1)) || fail "recovery check after crash $((cycle - 1)) failed"
	fi
	python3 "$T/crash.py" writer "$cycle" & WPID=$!; BG_PIDS+=($WPID)
	python3 "$T/crash.py" reader "$cycle" & RPID=$!; BG_PIDS+=($RPID)
	sleep "$(python3 -c 'import random; print(random.uniform(0.05, 0.6))')"

	kill -9 "$DAEMON_PID"
	reap_killed_daemon
	out=$(timeout 10 stat "$MNT" 2>&1 || true)
	case "$out" in
		*"Transport endpoint is not connected"*) ;;
		*) fail "cycle $cycle: after kill -9, stat of the mount said: $out" ;;
	esac
	stop_bg
	fusermount3 -u "$MNT" || fail "cycle $cycle: fusermount3 -u of the dead mount failed"
	! grep -q " $MNT fuse" /proc/mounts || fail "cycle $cycle: mount still listed"

	# The store as the crash left it (WAL included), checked on a copy so
	# the restarted daemon does its own recovery.
	rm -rf "$T/chk"; mkdir "$T/chk"
	cp "$STORE" "$T/chk/s.db"
	[ -f "$STORE-wal" ] && cp "$STORE-wal" "$T/chk/s.db-wal"
	chk=$(sqlite3 "$T/chk/s.db" 'pragma integrity_check' 2>&1)
	[ "$chk" = ok ] || fail "cycle $cycle: integrity_check of the crashed store: $chk"
done

# Last restart: verify, then a clean unmount and the real store's check.
mount_fs
run verify "$cycle" || fail "recovery check after crash $cycle failed"
cd /
umount_fs
chk=$(sqlite3 "$STORE" 'pragma integrity_check' 2>&1)
[ "$chk" = ok ] || fail "integrity_check of the store: $chk"

ndone=$(grep -c '^D ' "$WLOG" || true)
reads=$(cat "$T"/reads-* 2>/dev/null | awk '{s+=$1} END {print s+0}')
echo "$cycle kill -9 cycles in $((SECONDS - start)) s, $ndone logged ops, ~$reads reads during writing"
if [ -s "$T/writer-errors" ]; then
	grep -v -e ENOTCONN -e ECONNABORTED "$T/writer-errors" >&2 &&
		fail "the writer failed with an unexpected error before the kill (see above)"
fi
[ "$cycle" -ge 5 ] || fail "only $cycle cycles ran within ${BUDGET}s"
[ "$ndone" -gt "$cycle" ] || fail "the writer hardly committed anything ($ndone ops)"
ok "every committed write survived kill -9, nothing half-written is live, store intact"

if [ -s "$T/torn.log" ]; then
	head -5 "$T/torn.log" >&2
	fail "$(wc -l <"$T/torn.log") reads while the writer ran did not pass their checksum (torn live file; see fs_concurrency)"
fi
ok "no torn reads while writing"
